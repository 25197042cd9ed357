"""ActingCopy: the online network's greedy actions, from CUDA graphs of a copy refreshed after gradient steps."""

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.envs import FakeImageEnv

from sb3_mario import DoubleDQN, MarioCNN, make_mario_env
from sb3_mario.ddqn.acting import ActingCopy

pytestmark = pytest.mark.slow  # real subprocesses or training runs

needs_gpu = pytest.mark.skipif(not th.cuda.is_available(), reason="needs a GPU")


def trained_model(device: str, **kwargs) -> DoubleDQN:
    env = FakeImageEnv(n_channels=4, screen_height=48, screen_width=48, discrete=True)
    model = DoubleDQN("CnnPolicy", env, buffer_size=500, learning_starts=100, learning_rate=1e-2, device=device,
                      seed=0, policy_kwargs=dict(features_extractor_class=MarioCNN), **kwargs)  # fmt: skip
    model.learn(300)
    return model


def test_acting_copy_needs_a_gpu():
    model = trained_model("cpu")
    with pytest.raises(ValueError, match="CUDA device"):
        ActingCopy(model.policy)


@pytest.mark.parametrize(("device", "cuda_graph"), [("cpu", True), pytest.param("cuda", False, marks=needs_gpu)])
def test_async_envs_act_through_predict_without_a_graphed_gpu(device, cuda_graph):
    # on a CPU, or with cuda_graph=False, the actions come from policy.predict, as SB3's
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=2, seed=0, vec_env_cls="subproc")
    model = DoubleDQN("CnnPolicy", env, buffer_size=500, learning_starts=50, device=device, seed=0, async_envs=True,
                      cuda_graph=cuda_graph, exploration_final_eps=0.0, exploration_fraction=0.01,
                      policy_kwargs=dict(features_extractor_class=MarioCNN))  # fmt: skip
    predicted = []
    original = model.policy.predict

    def counted(observation, *args, **kwargs):
        predicted.append(len(observation))
        return original(observation, *args, **kwargs)

    model.policy.predict = counted  # type: ignore[method-assign]
    model.learn(200)
    env.close()
    assert not any(isinstance(value, ActingCopy) for value in vars(model).values())
    assert sum(predicted) >= 100, "after learning_starts, the greedy actions come from policy.predict"


@needs_gpu
@pytest.mark.parametrize("n_obs", [1, 5, 64])
def test_actions_follow_the_online_network_after_each_refresh(n_obs):
    model = trained_model("cuda", cuda_graph=True)
    acting = ActingCopy(model.policy)
    obs = np.stack([model.observation_space.sample() for _ in range(n_obs)])
    greedy = model.predict(obs, deterministic=True)[0]
    assert np.array_equal(acting(obs), greedy)
    changed = 0
    for _ in range(4):
        model.train(gradient_steps=20, batch_size=32)  # lr 1e-2: the greedy actions move
        new_greedy = model.predict(obs, deterministic=True)[0]
        # copies, not views: until a refresh, the actions are those of the copied weights
        assert np.array_equal(acting(obs), greedy)
        acting.refresh()  # the older copy gets the new weights
        acting.refresh()  # and the other one: both are current now
        assert np.array_equal(acting(obs), new_greedy)
        changed += not np.array_equal(new_greedy, greedy)
        greedy = new_greedy
    assert changed > 0, "the test needs training that changes the greedy actions"


@needs_gpu
def test_async_training_on_a_gpu_acts_from_the_copy(tmp_path):
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=3, seed=0, vec_env_cls="subproc")
    model = DoubleDQN("CnnPolicy", env, buffer_size=2000, learning_starts=100, device="cuda", seed=0,
                      async_envs=True, cuda_graph=True, exploration_final_eps=0.0, exploration_fraction=0.01,
                      policy_kwargs=dict(features_extractor_class=MarioCNN))  # fmt: skip
    calls = []
    original = ActingCopy.__call__

    def counted(self, observations):
        calls.append(len(observations))
        return original(self, observations)

    ActingCopy.__call__ = counted  # type: ignore[method-assign]
    try:
        # checkpoints taken mid-learn, while the copy and its graphs exist, save and load
        model.learn(600, callback=CheckpointCallback(save_freq=150, save_path=str(tmp_path)))
    finally:
        ActingCopy.__call__ = original  # type: ignore[method-assign]
    env.close()
    assert not any(isinstance(value, ActingCopy) for value in vars(model).values()) and model._n_updates > 0
    assert calls and sum(calls) >= 300, "after learning_starts, the greedy actions come from the copy"
    checkpoints = sorted(tmp_path.glob("*.zip"))
    assert checkpoints
    loaded = DoubleDQN.load(checkpoints[-1], device="cuda")
    obs = np.stack([loaded.observation_space.sample() for _ in range(4)])
    assert loaded.predict(obs, deterministic=True)[0].shape == (4,)
