"""DoubleDQN(async_envs=True) stores what SB3's lock-step loop stores, and leaves the env as it found it."""

import os
import time
import warnings

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecFrameStack, VecTransposeImage
from test_buffers import FlickerEnv
from test_fast_path import EnvDuringLearn

from sb3_mario import DoubleDQN, MarioCNN, make_mario_env
from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.ddqn.actors import AHEAD, WORKER_NICENESS, AsyncEnvs, _FrameStacks
from sb3_mario.ddqn.overlap import OverlappedLoop

pytestmark = pytest.mark.slow  # real subprocesses or training runs


def obs_policy(obs, deterministic=False):
    # an action that depends on the observation only, not on which other envs share the forward pass
    return (obs.astype(np.int64).sum(axis=(1, 2, 3)) // 7) % 5, None


def run(async_envs: bool, n_envs: int, **kwargs):
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=n_envs, seed=0, vec_env_cls="subproc")
    model = DoubleDQN("CnnPolicy", env, buffer_size=2000, device="cpu", seed=0, async_envs=async_envs,
                      replay_buffer_class=FrameReplayBuffer, policy_kwargs=dict(features_extractor_class=MarioCNN),
                      **kwargs)  # fmt: skip
    return env, model


@pytest.mark.parametrize("channels", [1, 3])
def test_frame_stacks_equal_vec_frame_stack(channels):
    # one env at a time, in any order, the stacks (and terminal observations) equal SB3's VecFrameStack +
    # VecTransposeImage stepping all envs together
    n_envs = 3
    sb3 = VecTransposeImage(VecFrameStack(DummyVecEnv([lambda: FlickerEnv(channels)] * n_envs), 4))
    raw = DummyVecEnv([lambda: FlickerEnv(channels)] * n_envs)
    sb3.seed(0)
    raw.seed(0)
    sb3.reset()
    raw.reset()
    stacks = _FrameStacks([sb3.venv, sb3])
    stacks.start(sb3.venv)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(120):
        actions = rng.integers(0, 3, n_envs)
        expected, _, dones, expected_infos = sb3.step(actions)
        frames, _, raw_dones, infos = raw.step(actions)
        assert np.array_equal(dones, raw_dones)
        for i in rng.permutation(n_envs):
            got = stacks.update(int(i), frames[i], bool(dones[i]), infos[i])
            assert np.array_equal(got[0], expected[i])
            if dones[i]:
                ends += 1
                assert np.array_equal(infos[i]["terminal_observation"], expected_infos[i]["terminal_observation"])
    assert ends > 5
    # handed back, the whole VecEnv steps on from the same stacks
    stacks.stacks[...] = expected
    sb3.venv.stacked_obs.stacked_obs[...] = 0
    stacks.hand_back()
    assert np.array_equal(sb3.venv.stacked_obs.stacked_obs.transpose(0, 3, 1, 2), expected)


def test_frame_stacks_reject_channel_last_stacks_without_transpose():
    env = VecFrameStack(DummyVecEnv([lambda: FlickerEnv(1)]), 4)
    with pytest.raises(ValueError, match="async_envs=False"):
        _FrameStacks([env])


class TalksToWorkers(BaseCallback):
    """Calls the workers each step, as a user's logging callback might (with async envs, steps are in flight)."""

    def _on_step(self) -> bool:
        env = self.training_env
        assert [spec.id for spec in env.get_attr("spec")] == ["SuperMarioBros-1-1-v0"] * env.num_envs
        env.set_attr("probe", self.num_timesteps, indices=[1])
        assert env.env_method("get_wrapper_attr", "probe", indices=1) == [self.num_timesteps]
        assert env.env_is_wrapped(Monitor) == [True] * env.num_envs
        return True


def test_async_envs_store_the_lock_step_transitions():
    # ... with a callback that calls the workers between steps
    results = []
    for async_envs in (False, True):
        env, model = run(async_envs, n_envs=3, learning_starts=0, gradient_steps=0)
        model.predict = obs_policy  # type: ignore[method-assign]
        seen = EnvDuringLearn()
        model.learn(450, callback=[TalksToWorkers(), seen])
        assert isinstance(seen.env, AsyncEnvs) == async_envs
        buffer = model.replay_buffer
        rows = np.arange(buffer.pos)
        obs = [buffer.observations_at(rows, np.full_like(rows, e)) for e in range(3)]
        results.append((buffer.pos, buffer.actions[rows].copy(), buffer.rewards[rows].copy(),
                        buffer.dones[rows].copy(), obs))  # fmt: skip
        env.close()
    (pos, *lock_step), (async_pos, *async_) = results
    # learn ends where SB3's loop ends (whole rollouts of train_freq=4 steps), an episode end seen on the way
    assert pos == async_pos == 152 and lock_step[2].sum() >= 1
    for expected, got in zip(lock_step[:3], async_[:3], strict=True):
        assert np.array_equal(expected, got)
    for (obs, next_obs), (async_obs, async_next_obs) in zip(lock_step[3], async_[3], strict=True):
        assert np.array_equal(obs, async_obs) and np.array_equal(next_obs, async_next_obs)


class StopAt(BaseCallback):
    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step

    def _on_step(self) -> bool:
        return self.num_timesteps < self.step


def test_a_callback_that_stops_learn_leaves_no_step_in_flight():
    # the envs ran ahead of the step where the callback stopped learn: that step and the ones in flight are
    # stored (SB3 counts the stopping step without storing it), one replay row per vec-env step
    env, model = run(True, n_envs=3, learning_starts=0, gradient_steps=0)
    model.predict = obs_policy  # type: ignore[method-assign]
    seen = EnvDuringLearn()
    model.learn(900, callback=[seen, StopAt(150)])
    assert isinstance(seen.env, AsyncEnvs) and seen.env.in_flight is None
    assert model.num_timesteps > 150 and model.replay_buffer.pos == model.num_timesteps // 3
    reference, lock_step = run(False, n_envs=3, learning_starts=0, gradient_steps=0)
    lock_step.predict = obs_policy  # type: ignore[method-assign]
    lock_step.learn(model.num_timesteps)
    rows = np.arange(model.replay_buffer.pos)
    assert np.array_equal(model.replay_buffer.actions[rows], lock_step.replay_buffer.actions[rows])
    for e in range(3):
        envs = np.full_like(rows, e)
        for got, expected in zip(model.replay_buffer.observations_at(rows, envs),
                                 lock_step.replay_buffer.observations_at(rows, envs), strict=True):  # fmt: skip
            assert np.array_equal(got, expected)
    env.close()
    reference.close()


def test_async_envs_train_and_hand_the_env_back():
    counts = []
    for async_envs in (False, True):
        env, model = run(async_envs, n_envs=2, learning_starts=40, train_freq=1, gradient_steps=1)
        seen = EnvDuringLearn()
        model.learn(200, callback=seen)
        counts.append(model._n_updates)
        if async_envs:
            assert isinstance(seen.env, AsyncEnvs) and seen.env.in_flight is None
            # a learner on the CPU shares the cores with the workers at the same priority
            own = os.getpriority(os.PRIO_PROCESS, 0)
            assert all(os.getpriority(os.PRIO_PROCESS, p.pid) == own for p in env.processes)
            # stepped lock-step again, every env's stack shifts by one frame from the last observation
            last = model._last_obs.copy()
            obs, _, dones, _ = model.env.step(np.zeros(2, dtype=np.int64))
            for i in np.flatnonzero(~dones):
                assert np.array_equal(obs[i, :-1], last[i, 1:])
            model._last_obs = obs
            model.learn(100, reset_num_timesteps=False, callback=seen)
            assert model.num_timesteps >= 300 and seen.env.in_flight is None
        env.close()
    assert counts[0] == counts[1] > 50


@pytest.mark.parametrize("fast_path", ["async_envs", "overlap_env_step"])
def test_callbacks_see_the_training_env_as_given(fast_path):
    # SB3's EvalCallback compares the training env's type with its eval env's: the fast path's wrapper is not
    # what it sees
    env, model = run(fast_path == "async_envs", n_envs=2, learning_starts=1000, overlap_env_step=True)
    eval_env = VecTransposeImage(make_mario_env("SuperMarioBros-1-1-v0", n_envs=1, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Training and eval env are not of the same type"
        seen = EnvDuringLearn()
        model.learn(40, callback=[seen, EvalCallback(eval_env, eval_freq=10**6)])
    assert isinstance(seen.loop, OverlappedLoop) and seen.given is model.env
    assert isinstance(seen.env, AsyncEnvs) == (fast_path == "async_envs")
    env.close()


class SlowSteps(gym.Wrapper):
    """Sleeps ``seconds`` in each step: a worker that falls behind the others."""

    def __init__(self, env: gym.Env, seconds: float) -> None:
        super().__init__(env)
        self.seconds = seconds

    def step(self, action):
        time.sleep(self.seconds)
        return self.env.step(action)


def slow_image_env(seconds: float) -> gym.Env:
    return SlowSteps(FakeImageEnv(screen_height=36, screen_width=36, n_channels=1, discrete=True), seconds)


def test_workers_run_at_most_ahead_steps_beyond_the_slowest():
    # env 0 takes 20 ms a step, the others next to nothing: they run ahead of it, but never more than AHEAD steps
    fns = [lambda s=seconds: slow_image_env(s) for seconds in (0.02, 0.0, 0.0)]
    envs = AsyncEnvs(VecTransposeImage(SubprocVecEnv(fns)), train_some=lambda: False)
    envs.act = lambda obs, indices: np.zeros(len(obs), dtype=np.int64)
    envs.reset()
    envs.step_async(np.zeros(3, dtype=np.int64))
    leads = []
    for _ in range(20):
        envs.step_wait()
        leads.append([len(sent) for sent in envs._sent])  # steps sent beyond the row just returned
        envs.step_async(envs.in_flight)  # as SB3's loop: the actions already sent
    rows = envs.drain()
    envs.close()
    leads_array = np.array(leads)
    assert (leads_array[:, 0] == 1).all(), "the slow env is sent its next step as soon as it returns one"
    assert leads_array[:, 1:].max() == AHEAD, "the fast envs run ahead, up to AHEAD steps"
    assert len(rows) == AHEAD, "drain() collects the steps in flight: the slow env steps up to the others"


def test_workers_yield_their_cores_to_a_gpu_trainer():
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=2, seed=0, vec_env_cls="subproc")
    AsyncEnvs(VecTransposeImage(env), train_some=lambda: False, nice_workers=True)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert all(os.getpriority(os.PRIO_PROCESS, p.pid) >= own + WORKER_NICENESS for p in env.processes)
    env.close()


def test_async_envs_fall_back_to_lock_step_without_subprocesses():
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=2, seed=0)
    model = DoubleDQN("CnnPolicy", env, buffer_size=200, learning_starts=1000, device="cpu", async_envs=True)
    seen = EnvDuringLearn()
    with pytest.warns(UserWarning, match=r"async_envs=True needs envs in subprocesses \(rl-zoo: --vec-env subproc"):
        model.learn(20, callback=seen)
    assert isinstance(seen.loop, OverlappedLoop) and seen.env is model.env
    env.close()
