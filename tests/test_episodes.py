"""Every episode is counted, however it ends: a policy that stands still is cut by ``stuck_steps``, and SB3's
Monitor, ``evaluate_policy``, ``EvalCallback`` and ``MarioEvalCallback`` all see those episodes end, with the
same reward as ``sb3_mario.evaluate_mario``."""

import contextlib
import csv
import signal
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecTransposeImage

from sb3_mario import DoubleDQN, MarioEvalCallback, MarioWrapper, evaluate_mario, make_mario_env
from sb3_mario.wrappers import MarioCore

ENV_ID = "SuperMarioBros-1-1-v0"
STUCK = 20  # agent steps without progress before the cut
NOOP = 0


@contextlib.contextmanager
def fails_instead_of_hanging(seconds: int = 900) -> Iterator[None]:
    """An evaluation that never ends fails the test (generous: a loaded machine is slow, not stuck)."""

    def hang(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: an episode end was never counted")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def stuck_env(n_envs: int = 1, **kwargs) -> object:
    return make_mario_env(ENV_ID, n_envs=n_envs, seed=0, wrapper_kwargs=dict(stuck_steps=STUCK, noop_max=30), **kwargs)


def stand_still(model: DoubleDQN) -> DoubleDQN:
    """The model's greedy policy replaced by one that never presses a button."""
    model.predict = lambda obs, *args, **kwargs: (np.full(len(obs), NOOP), None)  # type: ignore[method-assign]
    return model


@pytest.fixture(scope="module")
def still_model():
    env = stuck_env()
    yield stand_still(DoubleDQN("CnnPolicy", env, buffer_size=200, learning_starts=10_000, device="cpu", seed=0))
    env.close()


def test_monitor_records_the_episodes_that_the_wrapper_cuts(tmp_path):
    env = stuck_env(monitor_dir=str(tmp_path))
    try:
        env.reset()
        returns, episodes = [], []
        ret = 0.0
        for _ in range(3 * STUCK):
            _, rewards, dones, infos = env.step(np.array([NOOP]))
            ret += float(rewards[0])
            if dones[0]:
                assert "episode" in infos[0] and infos[0]["TimeLimit.truncated"]
                episodes.append(infos[0]["episode"])
                returns.append(ret)
                ret = 0.0
    finally:
        env.close()
    assert [e["l"] for e in episodes] == [STUCK] * 3  # agent steps, not NES frames
    assert [e["r"] for e in episodes] == pytest.approx(returns)  # the wrapper's reward
    rows = list(csv.DictReader(line for line in (tmp_path / "0.monitor.csv").open() if not line.startswith("#")))
    assert [int(row["l"]) for row in rows] == [STUCK] * 3


def test_sb3_evaluate_policy_ends_and_reports_the_wrappers_return(still_model):
    env = stuck_env(n_envs=2)
    try:
        with fails_instead_of_hanging():
            _, lengths = evaluate_policy(still_model, env, n_eval_episodes=4, return_episode_rewards=True)
    finally:
        env.close()
    assert lengths == [STUCK] * 4
    one = stuck_env()
    try:
        one.seed(0)
        sb3_return, _ = evaluate_policy(still_model, one, n_eval_episodes=1)
        ours = evaluate_mario(still_model, one, n_episodes=1, first_seed=0)
    finally:
        one.close()
    # one reward story: SB3's evaluation (through Monitor) and sb3-mario's report the same return
    assert sb3_return == pytest.approx(ours.mean_return, abs=1e-4) and ours.lengths == [STUCK]


def test_sb3_eval_callback_ends_on_a_stuck_agent(still_model, tmp_path):
    eval_env = VecTransposeImage(stuck_env())  # as SB3 wraps the training env
    callback = EvalCallback(eval_env, eval_freq=25, n_eval_episodes=2, log_path=str(tmp_path), verbose=0)
    try:
        with fails_instead_of_hanging():
            still_model.learn(50, callback=callback)
    finally:
        eval_env.close()
    evaluations = np.load(tmp_path / "evaluations.npz")
    assert evaluations["ep_lengths"].tolist() == [[STUCK, STUCK], [STUCK, STUCK]]


def test_mario_eval_callback_ends_on_a_stuck_agent(still_model):
    callback = MarioEvalCallback(n_eval_episodes=2, eval_freq=25, verbose=0)
    with fails_instead_of_hanging():
        still_model.learn(50, callback=callback)
    assert callback.last_result is not None and callback.last_result.lengths == [STUCK, STUCK]
    assert callback.last_result.clears == [False, False]


def test_the_pipeline_sits_beneath_a_monitor_directly_under_the_wrapper():
    wrapper = MarioWrapper(Monitor(gym.make(ENV_ID)))
    assert isinstance(wrapper.env, Monitor) and wrapper.env.env is wrapper.core
    assert isinstance(wrapper.core, MarioCore) and wrapper.observation_space.shape == (84, 84, 1)
    # another wrapper in between: the pipeline stays directly under MarioWrapper, the other wrapper sees raw frames
    user = gym.Wrapper(Monitor(gym.make(ENV_ID)))
    wrapped = MarioWrapper(user)
    assert wrapped.env is wrapped.core and wrapped.core.env.env is user
