"""Failure restarts: the kept states against hand-counted cases, a restart on the real emulator, DoubleDQN's use."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from sb3_mario import DoubleDQN, MarioWrapper, make_mario_env
from sb3_mario.restarts import FailureRestarts, SavedState

ENV_ID = "SuperMarioBros-1-1-v0"
RIGHT = 1  # right_only's "right": on 1-1 Mario runs into the first Goomba and dies, 40 agent steps in


def states(numbers):
    return [SavedState(emulator=n, last_action=0) for n in numbers]


def test_a_failed_episode_keeps_one_of_its_last_states_and_a_cleared_one_none():
    restarts = FailureRestarts(probability=1.0, steps_back=4)
    rng = np.random.default_rng(0)
    for state in states(range(10)):
        restarts.record(state)
    restarts.episode_ended(failed=False, rng=rng)
    assert not restarts.failures and not restarts.recent, "a clear keeps nothing, and the next episode starts afresh"
    kept = []
    for _ in range(2000):
        for state in states(range(10)):
            restarts.record(state)
        restarts.episode_ended(failed=True, rng=rng)
        kept.append(restarts.failures[-1].emulator)
    # 1..4 steps before the end of states 0..9: states 6..9, uniformly (2,000 draws: standard error 0.01)
    assert set(kept) == {6, 7, 8, 9}
    assert all(abs(np.mean(np.array(kept) == n) - 0.25) < 0.04 for n in (6, 7, 8, 9))
    # an episode shorter than steps_back: one of the states it has
    restarts.record(SavedState(emulator="only", last_action=0))
    restarts.episode_ended(failed=True, rng=rng)
    assert restarts.failures[-1].emulator == "only"


def test_the_pool_keeps_the_newest_failures_and_starts_from_them_with_the_probability():
    restarts = FailureRestarts(probability=1.0, steps_back=1, pool_size=3)
    rng = np.random.default_rng(1)
    assert restarts.start(rng) is None, "nothing kept yet: the stage's start"
    for n in range(5):
        restarts.record(SavedState(emulator=n, last_action=0))
        restarts.episode_ended(failed=True, rng=rng)
    assert [s.emulator for s in restarts.failures] == [2, 3, 4]
    assert {restarts.start(rng).emulator for _ in range(200)} == {2, 3, 4}
    restarts.probability = 0.25
    starts = [restarts.start(rng) is not None for _ in range(4000)]
    assert abs(np.mean(starts) - 0.25) < 0.03  # standard error 0.007
    restarts.probability = 0.0
    assert all(restarts.start(rng) is None for _ in range(100))


@pytest.mark.parametrize("settings", [dict(probability=1.5, steps_back=4), dict(probability=0.5, steps_back=0)])
def test_bad_restart_settings_are_refused(settings):
    with pytest.raises(ValueError, match="probability in \\[0, 1\\], steps_back >= 1"):
        FailureRestarts(**settings)


def play(env, actions):
    """:return: the observations, rewards, terminated flags and x positions of ``actions`` played from now on"""
    trace = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, reward, terminated, truncated, info["x_pos"], info["time"]))
        if terminated or truncated:
            break
    return trace


def test_a_restart_starts_where_the_failed_episode_was_and_plays_on_as_it_did():
    env = MarioWrapper(gym.make(ENV_ID), noop_max=0)
    obs, info = env.reset(seed=0)
    assert info["restarted"] is False and env.step(RIGHT)[4]["restarted"] is False
    env.set_failure_restarts(1.0, steps_back=10)
    first_obs, info = env.reset(seed=0)
    assert info["restarted"] is False, "nothing failed yet: the stage's start"
    episode = play(env, [RIGHT] * 200)
    assert episode[-1][2] and len(episode) == 40, "Mario runs into the first Goomba"
    observations = [first_obs] + [step[0] for step in episode]

    obs, info = env.reset()
    assert info["restarted"] is True
    # the restart is the state after one of the 10 steps before the death (none the death itself)
    start = [i for i, seen in enumerate(observations) if np.array_equal(seen, obs)]
    assert len(start) == 1 and 30 <= start[0] <= 39, start
    assert info["x_pos"] == episode[start[0] - 1][4] == info["max_x_pos"], "the episode's progress counts from there"
    assert env.core._last_action == RIGHT, "sticky actions would repeat the saved state's last action, not a no-op"
    # from there the same actions play the same game: observations, rewards, clock, the same death
    replay = play(env, [RIGHT] * 200)
    assert len(replay) == len(episode) - start[0]
    for again, before in zip(replay, episode[start[0] :], strict=True):
        assert np.array_equal(again[0], before[0])
        assert again[1:] == before[1:]
    env.close()


def test_a_stuck_cut_is_a_failure_and_restarts_off_play_every_episode_from_the_start():
    env = MarioWrapper(gym.make(ENV_ID), noop_max=0, stuck_steps=3)
    env.set_failure_restarts(1.0, steps_back=2)
    env.reset(seed=0)
    cut = play(env, [0] * 10)  # no-op: no progress, cut after 3 steps
    assert cut[-1][3] and len(cut) == 3
    assert len(env.core.restarts.failures) == 1
    env.set_failure_restarts(1.0, steps_back=2)
    assert len(env.core.restarts.failures) == 1, "the same settings keep what was kept"
    env.set_failure_restarts(0.0, steps_back=2)
    obs, info = env.reset(seed=0)
    assert env.core.restarts is None and info["restarted"] is False
    fresh = MarioWrapper(gym.make(ENV_ID), noop_max=0, stuck_steps=3)
    assert np.array_equal(obs, fresh.reset(seed=0)[0])
    env.close()
    fresh.close()


def test_failure_restarts_need_mario_envs_and_a_probability(vector_env):
    model = DoubleDQN("MlpPolicy", vector_env, failure_restarts=0.5, buffer_size=100, device="cpu")
    with pytest.raises(ValueError, match="only Mario envs wrapped in sb3_mario.MarioWrapper do.*failure_restarts=0"):
        model.learn(10)
    with pytest.raises(ValueError, match=r"failure_restarts=1.5 \(must be in \[0, 1\]\)"):
        DoubleDQN("MlpPolicy", vector_env, failure_restarts=1.5, buffer_size=100, device="cpu")
    with pytest.raises(ValueError, match=r"failure_restart_steps=0 \(must be an integer >= 1\)"):
        DoubleDQN("MlpPolicy", vector_env, failure_restarts=0.5, failure_restart_steps=0, buffer_size=100, device="cpu")


class EpisodeEnds(BaseCallback):
    """Whether each training episode started from a failure state."""

    def __init__(self) -> None:
        super().__init__()
        self.restarted: list[bool] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done:
                self.restarted.append(info["restarted"])
        return True


@pytest.mark.slow
@pytest.mark.parametrize("loop", ["sb3", "async"])
def test_double_dqn_restarts_its_training_episodes(loop, tmp_path):
    # random actions and a cut after 10 steps without progress: short episodes, nearly all failures
    vec = "subproc" if loop == "async" else "dummy"
    env = make_mario_env(ENV_ID, n_envs=2, seed=0, vec_env_cls=vec, wrapper_kwargs=dict(stuck_steps=10))
    model = DoubleDQN("CnnPolicy", env, buffer_size=500, learning_starts=0, batch_size=8, device="cpu", seed=0,
                      train_freq=1, gradient_steps=1, async_envs=loop == "async", failure_restarts=0.5,
                      failure_restart_steps=5)  # fmt: skip
    ends = EpisodeEnds()
    model.learn(600, callback=ends)
    env.close()
    # about half of the episodes after each env's first failure start from a failure state
    assert len(ends.restarted) >= 15 and 0.2 < np.mean(ends.restarted) < 0.8, ends.restarted
    model.save(tmp_path / "restarts")
    loaded = DoubleDQN.load(tmp_path / "restarts", device="cpu")
    assert (loaded.failure_restarts, loaded.failure_restart_steps) == (0.5, 5), "the setting travels with the model"


def test_learning_curves_leave_restarted_episodes_out_of_the_training_clear_rate(learning_curve, tmp_path):
    # a monitor file as SB3's Monitor writes it with info_keywords=('flag_get', 'restarted')
    run = tmp_path / "SuperMarioBros-1-3-v0_1"
    run.mkdir()
    rows = [(1, True, False), (2, True, True), (3, False, False), (4, True, True), (5, True, False)]
    lines = ['#{"t_start": 1000.0, "env_id": "SuperMarioBros-1-3-v0"}', "r,l,t,flag_get,restarted"]
    lines += [f"1.0,10,{t * 60.0},{flag},{restarted}" for t, flag, restarted in rows]
    (run / "0.monitor.csv").write_text("\n".join(lines) + "\n")
    start, train = learning_curve.monitor_episodes(run)
    assert start == 1000.0 and [e["restarted"] for e in train] == [False, True, False, True, False]
    assert [e["steps"] for e in train] == [10, 20, 30, 40, 50], "every episode's steps count"
    # from the stage's start: episodes 1, 3, 5, cleared, not, cleared; a window of 2 of them: 1/2, 1/2
    minutes, rates, window = learning_curve.training_clear_rate(train, "minutes", window=2)
    assert window == 2 and minutes == [3.0, 5.0] and rates.tolist() == [0.5, 0.5]
    assert learning_curve.training_clear_rate(train, "steps", window=100)[2] == 3
