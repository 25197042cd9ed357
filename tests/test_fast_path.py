"""The fast path computes what the plain DoubleDQN computes."""

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.envs import FakeImageEnv

from sb3_mario import DoubleDQN, MarioCNN, make_mario_env
from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.ddqn.graph import GraphedUpdate
from sb3_mario.ddqn.learner import SAMPLE_CHUNK, set_training_mode, slice_samples
from sb3_mario.ddqn.overlap import OverlappedLoop

needs_gpu = pytest.mark.skipif(not th.cuda.is_available(), reason="needs a GPU")


class EnvDuringLearn(BaseCallback):
    """Records, while learn runs, the env its loop steps (the async env side, if any), the loop (SB3's: the
    model; the fast path's: an OverlappedLoop) and what get_env() gives."""

    env = loop = given = None

    def _on_step(self) -> bool:
        self.env, self.loop, self.given = self.locals["env"], self.locals["self"], self.model.get_env()
        return True


class StopAt(BaseCallback):
    """Stops learn (returns False) or raises at the given call."""

    def __init__(self, calls: int, raise_error: bool = False) -> None:
        super().__init__()
        self.calls, self.raise_error = calls, raise_error

    def _on_step(self) -> bool:
        if self.n_calls >= self.calls and self.raise_error:
            raise RuntimeError("stopped by the test")
        return self.n_calls < self.calls


def filled_model(policy_kwargs: dict | None = None, device: str = "cpu", **kwargs) -> DoubleDQN:
    env = FakeImageEnv(n_channels=4, screen_height=48, screen_width=48, discrete=True)
    policy_kwargs = dict(features_extractor_class=MarioCNN, **(policy_kwargs or {}))
    model = DoubleDQN("CnnPolicy", env, buffer_size=500, learning_starts=10_000, device=device, seed=0,
                      policy_kwargs=policy_kwargs, **kwargs)  # fmt: skip
    model.learn(300)  # fills the buffer, no gradient step yet
    return model


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_gpu)])
@pytest.mark.parametrize("n_steps", [1, 3])
def test_graphed_update_equals_train_on_the_same_batches(n_steps, device):
    schedule = lambda progress: 5e-4 * progress  # noqa: E731
    plain = filled_model(n_steps=n_steps, learning_rate=schedule, device=device)
    # CPU: the same step, eagerly; GPU: replayed as a CUDA graph
    fast = filled_model(n_steps=n_steps, learning_rate=schedule, cuda_graph=True, device=device)
    fast.learner.sample_chunk = 1  # one replay-buffer call per step, as the plain one: the same batches
    # same weights and the same replay data in both
    fast.policy.load_state_dict(plain.policy.state_dict())
    fast.replay_buffer = copy.deepcopy(plain.replay_buffer)
    for model in (plain, fast):
        model._current_progress_remaining = 0.5  # learning rate 2.5e-4 from the schedule
    before = {k: v.clone() for k, v in plain.policy.state_dict().items()}
    for model in (plain, fast):
        np.random.seed(7)
        model.train(gradient_steps=5, batch_size=32)
    assert fast.learner.graphed is not None and plain.learner.graphed is None
    assert fast.learner.graphed.use_graph == (device == "cuda")
    rtol = 1e-5 if device == "cpu" else 1e-4  # GPU kernels: other reductions, other rounding
    for (name, a), b in zip(plain.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True):
        assert th.allclose(a, b, rtol=rtol, atol=1e-6 if device == "cuda" else 1e-7), name
    assert plain.logger.name_to_value["train/loss"] == pytest.approx(fast.logger.name_to_value["train/loss"], rel=rtol)
    assert not th.equal(before["q_net.q_net.0.weight"], plain.policy.state_dict()["q_net.q_net.0.weight"])


def test_the_online_network_acts_in_eval_mode_and_learns_in_train_mode():
    # a features extractor that records the mode of each of its forward passes, and whether train() made it
    seen: list[tuple[th.nn.Module, bool, bool]] = []
    in_train = [False]

    class Recorder(MarioCNN):
        def forward(self, observations: th.Tensor) -> th.Tensor:
            seen.append((self, in_train[0], self.training))
            return super().forward(observations)

    env = FakeImageEnv(n_channels=4, screen_height=48, screen_width=48, discrete=True)
    model = DoubleDQN("CnnPolicy", env, buffer_size=500, learning_starts=50, train_freq=4, overlap_env_step=True,
                      device="cpu", seed=0, policy_kwargs=dict(features_extractor_class=Recorder))  # fmt: skip
    train = model.train

    def recorded_train(*args, **kwargs):
        in_train[0] = True
        try:
            return train(*args, **kwargs)
        finally:
            in_train[0] = False

    model.train = recorded_train  # type: ignore[method-assign]
    model.learn(300)
    online = model.q_net.features_extractor
    acting = [training for net, inside, training in seen if net is online and not inside]
    learning = [training for net, inside, training in seen if net is online and inside]
    assert acting and learning
    assert not any(acting) and all(learning)


def test_set_training_mode_switches_only_when_the_mode_changes(monkeypatch):
    env = FakeImageEnv(n_channels=4, screen_height=48, screen_width=48, discrete=True)
    policy = DoubleDQN("CnnPolicy", env, buffer_size=100, device="cpu", seed=0).policy
    switches: list[bool] = []
    switch = policy.set_training_mode
    monkeypatch.setattr(policy, "set_training_mode", lambda mode: (switches.append(mode), switch(mode)))
    for mode in (True, True, False, False, True):
        set_training_mode(policy, mode)
        assert policy.training == policy.q_net.training == mode
        assert all(module.training == mode for module in policy.q_net.modules())
    assert switches == [False, True]
    policy.q_net.train(False)  # the network switched behind the policy's back: switched again
    set_training_mode(policy, True)
    assert switches == [False, True, True] and policy.q_net.training


@pytest.mark.parametrize("n_steps", [1, 3])
def test_batches_drawn_together_give_the_same_steps_as_their_slices(n_steps):
    # on a GPU, cuda_graph=True draws SAMPLE_CHUNK batches per replay-buffer call: each step must be the plain
    # step on its slice of that draw
    plain = filled_model(n_steps=n_steps)
    fast = filled_model(n_steps=n_steps, cuda_graph=True)
    fast.policy.load_state_dict(plain.policy.state_dict())
    fast.replay_buffer = copy.deepcopy(plain.replay_buffer)
    fast.learner.sample_chunk = SAMPLE_CHUNK  # as under a CUDA graph
    np.random.seed(7)
    drawn = plain.replay_buffer.sample(SAMPLE_CHUNK * 32)
    slices = [slice_samples(drawn, 32 * k, 32 * (k + 1)) for k in range(SAMPLE_CHUNK)]
    plain.replay_buffer.sample = lambda batch_size, env=None: slices.pop(0)  # type: ignore[method-assign]
    calls = []
    sample = fast.replay_buffer.sample
    fast.replay_buffer.sample = lambda batch_size, env=None: calls.append(batch_size) or sample(batch_size, env)  # type: ignore[method-assign]
    before = {k: v.clone() for k, v in plain.policy.state_dict().items()}
    np.random.seed(7)
    fast.train(gradient_steps=SAMPLE_CHUNK, batch_size=32)
    plain.train(gradient_steps=SAMPLE_CHUNK, batch_size=32)
    assert calls == [SAMPLE_CHUNK * 32] and not slices
    for (name, a), b in zip(plain.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True):
        assert th.allclose(a, b, rtol=1e-5, atol=1e-7), name
    assert not th.equal(before["q_net.q_net.0.weight"], plain.policy.state_dict()["q_net.q_net.0.weight"])


def test_graphed_update_is_double_dqn_not_dqn():
    model = filled_model()
    batch = model.replay_buffer.sample(32)
    update = GraphedUpdate(model.policy, max_grad_norm=1e9, use_graph=False)
    with th.no_grad():
        online_next, target_next = model.q_net(batch.next_observations), model.q_net_target(batch.next_observations)
        current = model.q_net(batch.observations).gather(1, batch.actions.long())
    double_target = batch.rewards + (1 - batch.dones) * 0.99 * target_next.gather(
        1, online_next.argmax(1, keepdim=True)
    )
    update(batch, 0.99)
    expected = th.nn.functional.smooth_l1_loss(current, double_target)
    assert update.loss_sum.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.slow
def test_overlapped_env_steps_take_the_same_number_of_updates():
    counts = []
    for overlap in (False, True):
        env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=2, seed=0, vec_env_cls="subproc")
        kwargs = dict(overlap_env_step=overlap, replay_buffer_class=FrameReplayBuffer)
        model = DoubleDQN("CnnPolicy", env, buffer_size=400, learning_starts=60, train_freq=1, gradient_steps=1,
                          device="cpu", seed=0, **kwargs)  # fmt: skip
        seen = EnvDuringLearn()
        model.learn(240, callback=seen)
        assert isinstance(seen.loop, OverlappedLoop) == overlap and seen.env is model.env
        counts.append((model.num_timesteps, model._n_updates))
        env.close()
    assert counts[0] == counts[1] and counts[0][1] > 50


def test_cuda_graph_needs_a_capturable_optimizer():
    from sb3_mario.ddqn.graph import make_optimizer_capturable

    with pytest.raises(ValueError, match="cannot run inside a CUDA graph"):
        make_optimizer_capturable(th.optim.SGD([th.zeros(1, requires_grad=True)], lr=0.1), th.device("cpu"))


def test_adam_is_fused_unless_the_user_chose_and_updates_like_the_per_tensor_adam(tmp_path):
    fused = filled_model()
    assert fused.policy.optimizer.param_groups[0]["fused"] is True
    per_tensor = filled_model(policy_kwargs=dict(optimizer_kwargs=dict(foreach=False)))
    group = per_tensor.policy.optimizer.param_groups[0]
    assert group["fused"] is None and group["foreach"] is False  # the user's choice stands
    # same weights, same batches: the same update, up to float rounding
    per_tensor.policy.load_state_dict(fused.policy.state_dict())
    per_tensor.replay_buffer = copy.deepcopy(fused.replay_buffer)
    before = {k: v.clone() for k, v in fused.policy.state_dict().items()}
    for model in (fused, per_tensor):
        np.random.seed(3)
        model.train(gradient_steps=5, batch_size=32)
    for (name, a), b in zip(fused.policy.state_dict().items(), per_tensor.policy.state_dict().values(), strict=True):
        assert th.allclose(a, b, rtol=1e-5, atol=1e-7), name
    assert not th.equal(before["q_net.q_net.0.weight"], fused.policy.state_dict()["q_net.q_net.0.weight"])
    # saved and loaded, it stays fused, with its Adam moments
    fused.save(tmp_path / "model.zip")
    loaded = DoubleDQN.load(tmp_path / "model.zip", device="cpu")
    assert loaded.policy.optimizer.param_groups[0]["fused"] is True
    state = next(iter(loaded.policy.optimizer.state.values()))
    assert th.equal(state["exp_avg"], next(iter(fused.policy.optimizer.state.values()))["exp_avg"])


@pytest.mark.parametrize(
    "option", [{}, {"cuda_graph": True}, {"overlap_env_step": True}, {"async_envs": True}], ids=lambda o: str(o)
)
@pytest.mark.parametrize("ending", ["normal", "callback", "exception"])
@pytest.mark.slow
def test_after_learn_the_env_is_the_users_and_train_trains(option, ending):
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=2, seed=0, vec_env_cls="subproc")
    try:
        model = DoubleDQN("CnnPolicy", env, buffer_size=400, learning_starts=40, train_freq=1, gradient_steps=1,
                          replay_buffer_class=FrameReplayBuffer, device="cpu", seed=0, **option)  # fmt: skip
        given = model.env
        if ending == "normal":
            model.learn(100)
        elif ending == "callback":
            model.learn(1_000, callback=StopAt(40))
        else:
            with pytest.raises(RuntimeError, match="stopped by the test"):
                model.learn(1_000, callback=StopAt(40, raise_error=True))
        assert model.env is given and model.get_env() is given
        before = model._n_updates
        model.train(gradient_steps=5, batch_size=32)  # SB3's contract: train() trains
        assert model._n_updates == before + 5
        model.learn(20, reset_num_timesteps=False)  # and learning again works
        assert model.env is given
    finally:
        env.close()
