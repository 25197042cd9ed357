"""DoubleDQN: the target is the Double-DQN one, everything else is SB3's DQN."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor

from sb3_mario import DoubleDQN, FrameReplayBuffer, MarioCNN, PrioritizedFrameReplayBuffer

GAMMA = 0.5
S, A, R, S_NEXT = np.array([1.0, 2.0], np.float32), 1, 0.5, np.array([3.0, 1.0], np.float32)
ONLINE = np.eye(2)  # Q_online(s) = s: argmax at s' is action 0
TARGET = np.array([[0.0, 1.0], [1.0, 0.0]])  # Q_target(s) = swap(s): argmax at s' is action 1


def huber(x: float) -> float:
    return 0.5 * x * x if abs(x) <= 1 else abs(x) - 0.5


def linear_q_model(cls, env, **kwargs):
    """A model whose Q-networks are single linear layers (no hidden layer) with hand-set weights."""
    model = cls(
        "MlpPolicy",
        env,
        policy_kwargs=dict(net_arch=[]),
        learning_starts=0,
        buffer_size=16,
        batch_size=1,
        gamma=GAMMA,
        device="cpu",
        seed=0,
        **kwargs,
    )
    for net, weight in ((model.q_net, ONLINE), (model.q_net_target, TARGET)):
        layer = net.q_net[0]
        with th.no_grad():
            layer.weight.copy_(th.as_tensor(weight))
            layer.bias.zero_()
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def add(model, obs, action, reward, next_obs, done):
    model.replay_buffer.add(obs[None], next_obs[None], np.array([[action]]), np.array([reward]), np.array([done]), [{}])


def loss_of_one_update(model) -> float:
    model.train(gradient_steps=1, batch_size=1)
    return model.logger.name_to_value["train/loss"]


@pytest.mark.parametrize("done", [False, True])
def test_target_is_double_dqn_and_differs_from_dqn(vector_env, done):
    ddqn = linear_q_model(DoubleDQN, vector_env)
    dqn = linear_q_model(DQN, vector_env)
    for model in (ddqn, dqn):
        add(model, S, A, R, S_NEXT, done)
    q_sa = S[A]  # online Q(s, a=1) = s[1] = 2
    a_star = int(np.argmax(ONLINE @ S_NEXT))
    assert a_star == 0 and int(np.argmax(TARGET @ S_NEXT)) == 1  # the two networks disagree
    bootstrap = 0.0 if done else GAMMA * (TARGET @ S_NEXT)[a_star]  # Q_target(s', a*) = 1
    expected = huber(q_sa - (R + bootstrap))
    dqn_expected = huber(q_sa - (R + (0.0 if done else GAMMA * (TARGET @ S_NEXT).max())))

    assert loss_of_one_update(ddqn) == pytest.approx(expected, rel=1e-6)
    assert loss_of_one_update(dqn) == pytest.approx(dqn_expected, rel=1e-6)
    if done:  # a terminal transition bootstraps nothing: both targets are r
        assert expected == pytest.approx(huber(q_sa - R))
    else:
        assert expected == pytest.approx(0.5) and dqn_expected == pytest.approx(0.0)


def test_update_moves_parameters_like_the_hand_computed_gradient(vector_env):
    model = linear_q_model(DoubleDQN, vector_env, learning_rate=0.1, max_grad_norm=1e9)
    model.policy.optimizer = th.optim.SGD(model.q_net.parameters(), lr=0.1)
    add(model, S, A, R, S_NEXT, False)
    before = model.q_net.q_net[0].weight.detach().clone()
    model.train(gradient_steps=1, batch_size=1)
    # d huber / d q = clip(q - y, -1, 1) = clip(2 - 1) = 1; dq/dW[a] = s
    expected = before.clone()
    expected[A] -= 0.1 * 1.0 * th.as_tensor(S)
    assert th.allclose(model.q_net.q_net[0].weight, expected, atol=1e-6)


def test_n_step_return_discounts_by_gamma_to_the_n(vector_env, monkeypatch):
    n = 3
    model = linear_q_model(DoubleDQN, vector_env, n_steps=n)
    states = [np.array([i, 2.0 * i], np.float32) for i in range(1, n + 3)]
    rewards = [1.0, 2.0, 4.0, 8.0]
    for t in range(n + 1):
        add(model, states[t], A, rewards[t], states[t + 1], False)
    buffer = model.replay_buffer
    monkeypatch.setattr(buffer, "sample", lambda batch_size, env=None: buffer._get_samples(np.array([0])))

    sample = buffer.sample(1)
    assert sample.discounts.item() == pytest.approx(GAMMA**n)

    n_step_return = sum(GAMMA**k * rewards[k] for k in range(n))
    s_n = states[n]  # s' of the n-step transition
    a_star = int(np.argmax(ONLINE @ s_n))
    expected = huber(states[0][A] - (n_step_return + GAMMA**n * (TARGET @ s_n)[a_star]))
    assert loss_of_one_update(model) == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_learns_cartpole():
    # rl-zoo's tuned DQN settings for CartPole-v1, with a smaller budget
    model = DoubleDQN(
        "MlpPolicy",
        "CartPole-v1",
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1000,
        gamma=0.99,
        target_update_interval=10,
        train_freq=256,
        gradient_steps=128,
        exploration_fraction=0.16,
        exploration_final_eps=0.04,
        policy_kwargs=dict(net_arch=[256, 256]),
        seed=0,
        device="cpu",
    )
    # DQN on CartPole swings between good and collapsed policies; the best of its evaluations during training
    # is what says it learns (a random policy returns ~22; over seeds 0-5 the best was 144-428)
    evaluations = EvalCallback(Monitor(gym.make("CartPole-v1")), eval_freq=2048, n_eval_episodes=5, verbose=0)
    model.learn(20_000, callback=evaluations)
    assert evaluations.best_mean_reward >= 120, f"best mean evaluation return {evaluations.best_mean_reward}"


@pytest.mark.parametrize("policy", ["MlpPolicy", "CnnPolicy"])
def test_save_load_predict_equal(tmp_path, policy, vector_env):
    if policy == "CnnPolicy":
        env = FakeImageEnv(screen_height=40, screen_width=40, n_channels=1, discrete=True)
        kwargs = {}
    else:
        env = vector_env
        kwargs = dict(policy_kwargs=dict(net_arch=[16]))
    model = DoubleDQN(policy, env, buffer_size=100, learning_starts=10, device="cpu", seed=1, **kwargs)
    model.learn(64)
    observations = np.stack([env.observation_space.sample() for _ in range(8)])
    actions, _ = model.predict(observations, deterministic=True)
    q_values = model.q_net(model.policy.obs_to_tensor(observations)[0]).detach().numpy()

    model.save(tmp_path / "model")
    loaded = DoubleDQN.load(tmp_path / "model", device="cpu")
    assert type(loaded) is DoubleDQN
    loaded_actions, _ = loaded.predict(observations, deterministic=True)
    loaded_q = loaded.q_net(loaded.policy.obs_to_tensor(observations)[0]).detach().numpy()
    assert np.array_equal(actions, loaded_actions)
    assert np.allclose(q_values, loaded_q)


def test_keeps_sb3_api(vector_env, tmp_path):
    assert set(DoubleDQN.policy_aliases) == {"MlpPolicy", "CnnPolicy", "MultiInputPolicy"}
    model = DoubleDQN(
        "MlpPolicy", vector_env, learning_starts=0, buffer_size=64, device="cpu", tensorboard_log=str(tmp_path)
    )
    model.learn(32)
    assert model.logger.name_to_value["train/n_updates"] > 0 or model._n_updates > 0
    assert (tmp_path / "DoubleDQN_1").is_dir()  # learn(tb_log_name="DoubleDQN")


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(buffer_size=-5), "buffer_size"),
        (dict(batch_size=0), "batch_size"),
        (dict(batch_size=64, buffer_size=32), "larger than buffer_size"),
        (dict(gamma=1.5), "gamma"),
        (dict(n_steps=0), "n_steps"),
        (dict(exploration_final_eps=-0.1), "exploration_final_eps"),
        (dict(learning_rate_final=-1e-5), "learning_rate_final"),
        (dict(learning_rate_final=1e-5, learning_rate_fraction=0.0), "learning_rate_fraction"),
    ],
)
def test_bad_hyperparameters_are_named(vector_env, kwargs, word):
    with pytest.raises(ValueError, match=word):
        DoubleDQN("MlpPolicy", vector_env, **kwargs)


@pytest.mark.parametrize("learning_rate", [2e-4, lambda progress_remaining: 2e-4 * progress_remaining])
def test_a_falling_learning_rate_reaches_its_floor_and_stays(vector_env, tmp_path, learning_rate):
    # 2e-4 falling to 1e-5 over the first 80% of 100 steps: 2e-4 - (2e-4 - 1e-5) * done / 0.8, then 1e-5. A
    # schedule (rl-zoo's lin_2e-4) starts the fall from its value at the start
    model = DoubleDQN("MlpPolicy", vector_env, learning_rate=learning_rate, learning_rate_final=1e-5,
                      learning_rate_fraction=0.8, learning_starts=0, buffer_size=64, device="cpu")  # fmt: skip
    for done, expected in ((0.0, 2e-4), (0.4, 1.05e-4), (0.8, 1e-5), (0.9, 1e-5), (1.0, 1e-5)):
        assert model.lr_schedule(1.0 - done) == pytest.approx(expected)
    model.learn(100)  # the last updates come after 80% of the 100 steps: at the floor
    assert model.policy.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
    model.save(tmp_path / "model")
    loaded = DoubleDQN.load(tmp_path / "model", device="cpu")
    assert loaded.lr_schedule(0.6) == pytest.approx(2e-4 - 1.9e-4 * 0.4 / 0.8)
    assert (loaded.learning_rate_final, loaded.learning_rate_fraction) == (1e-5, 0.8)


def test_a_replay_buffer_gamma_other_than_the_algorithm_s_is_refused(vector_env):
    # the n-step returns would discount with the buffer's gamma and ignore DoubleDQN's: refused, naming both
    with pytest.raises(ValueError, match=r"gamma=0.9 but DoubleDQN has gamma=0.99.*gamma:0.99"):
        DoubleDQN("MlpPolicy", vector_env, gamma=0.99, replay_buffer_class=NStepReplayBuffer,
                  replay_buffer_kwargs=dict(n_steps=3, gamma=0.9))  # fmt: skip
    model = DoubleDQN("MlpPolicy", vector_env, gamma=0.9, replay_buffer_class=NStepReplayBuffer,
                      replay_buffer_kwargs=dict(n_steps=3, gamma=0.9))  # fmt: skip
    assert model.replay_buffer.gamma == model.gamma == 0.9


@pytest.mark.parametrize("buffer_class", [NStepReplayBuffer, FrameReplayBuffer, PrioritizedFrameReplayBuffer])
def test_an_n_step_buffer_given_no_gamma_discounts_with_the_algorithm_s(buffer_class):
    # the buffers' own default is 0.99: left to it, the n-step returns would ignore DoubleDQN's gamma=0.9
    env = FakeImageEnv(n_channels=4, screen_height=48, screen_width=48, discrete=True)
    model = DoubleDQN(
        "CnnPolicy",
        env,
        gamma=0.9,
        buffer_size=100,
        device="cpu",
        replay_buffer_class=buffer_class,
        replay_buffer_kwargs=dict(n_steps=3),
        policy_kwargs=dict(features_extractor_class=MarioCNN),
    )
    assert model.replay_buffer.gamma == 0.9
    assert model.replay_buffer_kwargs == dict(n_steps=3, gamma=0.9)


def test_continuous_actions_get_a_clear_error():
    import gymnasium as gym

    with pytest.raises(ValueError, match=r"Discrete action space.*SAC"):
        DoubleDQN("MlpPolicy", gym.make("Pendulum-v1"))


def test_float16_checkpoints_refuse_weights_beyond_float16_and_keep_the_saved_file(vector_env, tmp_path):
    model = DoubleDQN("MlpPolicy", vector_env, buffer_size=64, device="cpu", float16_checkpoints=True)
    model.save(tmp_path / "model")
    with th.no_grad():
        next(model.q_net.parameters()).view(-1)[0] = 1e6  # float16 reaches 65504
    with pytest.raises(ValueError, match=r"beyond float16's range .* float16_checkpoints=False"):
        model.save(tmp_path / "model")
    assert DoubleDQN.load(tmp_path / "model", device="cpu").float16_checkpoints  # the earlier save is intact
    assert next(model.q_net.parameters()).view(-1)[0].item() == 1e6  # and the model untouched
