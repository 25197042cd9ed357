"""ez-greedy (temporally-extended epsilon-greedy) against hand-computed values, and in DoubleDQN's training loops."""

import itertools

import numpy as np
import pytest
from stable_baselines3.common.callbacks import BaseCallback

from sb3_mario import DoubleDQN, make_mario_env
from sb3_mario.ddqn.exploration import GREEDY, ExtendedExploration

ENV_ID = "SuperMarioBros-1-1-v0"


def test_durations_follow_the_zeta_distribution():
    # p(n) proportional to n ** -2 on 1..2: 1 / (1 + 1/4) = 0.8 and 0.25 / 1.25 = 0.2
    exploration = ExtendedExploration(n_envs=1, n_actions=5, mu=2.0, max_duration=2)
    assert np.allclose(exploration.duration_probabilities, [0.8, 0.2])
    # mu = 1 on 1..3: 1, 1/2, 1/3 over 11/6
    harmonic = ExtendedExploration(1, 5, mu=1.0, max_duration=3)
    assert np.allclose(harmonic.duration_probabilities, [6 / 11, 3 / 11, 2 / 11])
    np.random.seed(0)
    durations = []
    for _ in range(5000):
        assert exploration.remaining[0] == 0
        exploration.actions(np.array([0]), epsilon=1.0)  # always starts a repetition when idle
        durations.append(exploration.remaining[0] + 1)  # the step just taken, and those still to come
        exploration.remaining[0] = 0
    assert set(durations) == {1, 2}
    assert abs(np.mean(np.array(durations) == 2) - 0.2) < 0.02  # 5,000 draws: standard error 0.006


def test_an_exploring_env_repeats_its_action_for_the_drawn_duration_then_acts_greedily():
    np.random.seed(1)
    exploration = ExtendedExploration(n_envs=2, n_actions=5, mu=0.5, max_duration=6)
    first = exploration.actions(np.array([0]), epsilon=1.0)
    action, duration = first[0], exploration.remaining[0] + 1
    assert 0 <= action < 5 and 1 <= duration <= 6
    assert exploration.remaining[1] == 0, "only the envs asked for draw"
    later = [exploration.actions(np.array([0, 1]), epsilon=0.0) for _ in range(8)]
    # the drawn action for the rest of the duration, then greedy; env 1 never explores with epsilon 0
    assert [step[0] for step in later] == [action] * (duration - 1) + [GREEDY] * (8 - duration + 1)
    assert all(step[1] == GREEDY for step in later)


def test_an_episode_end_ends_the_repetition():
    np.random.seed(2)
    exploration = ExtendedExploration(n_envs=2, n_actions=5, mu=0.01, max_duration=50)
    exploration.actions(np.array([0, 1]), epsilon=1.0)
    assert (exploration.remaining > 0).all()  # with mu near 0 the durations are near uniform on 1..50
    exploration.episodes_ended(np.array([True, False]))
    nxt = exploration.actions(np.array([0, 1]), epsilon=0.0)
    assert nxt[0] == GREEDY and nxt[1] != GREEDY


def test_choose_takes_the_held_action_where_an_env_explores_and_the_greedy_one_elsewhere():
    np.random.seed(3)
    exploration = ExtendedExploration(n_envs=3, n_actions=5, mu=0.01, max_duration=50)
    exploration.actions(np.array([1]), epsilon=1.0)  # env 1 starts a repetition
    held = exploration.held[1]
    greedy = np.array([7, 8, 9])  # no action of the set: these can only come from the greedy side
    assert exploration.choose(np.array([0, 1, 2]), epsilon=0.0, greedy=greedy).tolist() == [7, held, 9]


def test_bad_ez_greedy_settings_name_the_fix():
    env = make_mario_env(ENV_ID, n_envs=1)
    with pytest.raises(ValueError, match=r"ez_greedy_mu=0 \(must be > 0, or None for epsilon-greedy\)"):
        DoubleDQN("CnnPolicy", env, ez_greedy_mu=0, buffer_size=100, device="cpu")
    with pytest.raises(ValueError, match=r"ez_greedy_max_duration=0 \(must be an integer >= 1\)"):
        DoubleDQN("CnnPolicy", env, ez_greedy_mu=2.0, ez_greedy_max_duration=0, buffer_size=100, device="cpu")
    env.close()


class ActionLog(BaseCallback):
    """The actions of env 0 at every vec-env step."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[int] = []

    def _on_step(self) -> bool:
        self.actions.append(int(self.locals["actions"][0]))
        return True


def mean_run_length(actions: list[int]) -> float:
    changes = sum(a != b for a, b in itertools.pairwise(actions))
    return len(actions) / (changes + 1)


@pytest.mark.parametrize("loop", ["sb3", "async"])
def test_training_explores_in_repeated_actions(loop, tmp_path):
    # epsilon 1 throughout: SB3's epsilon-greedy draws a uniform action every step (5 actions: runs of 1.25 steps
    # on average), ez-greedy repeats each draw for zeta(2) steps on 1..100 (3.2 on average, more where draws repeat)
    kwargs = dict(buffer_size=400, learning_starts=0, batch_size=8, device="cpu", seed=0, exploration_initial_eps=1.0,
                  exploration_final_eps=1.0, train_freq=1, gradient_steps=1)  # fmt: skip
    lengths = {}
    for name, extra in (("epsilon", {}), ("ez", {"ez_greedy_mu": 2.0})):
        vec = "subproc" if loop == "async" else "dummy"
        env = make_mario_env(ENV_ID, n_envs=2, seed=0, vec_env_cls=vec)
        model = DoubleDQN("CnnPolicy", env, async_envs=loop == "async", **kwargs, **extra)
        log = ActionLog()
        model.learn(600, callback=log)
        env.close()
        lengths[name] = mean_run_length(log.actions)
        if name == "ez":
            # the setting travels with the model; the envs' repetitions in flight do not
            model.save(tmp_path / "ez")
            loaded = DoubleDQN.load(tmp_path / "ez", device="cpu")
            assert loaded.ez_greedy_mu == 2.0 and loaded.ez_greedy_max_duration == 100
            assert loaded.extended_exploration() is not None and not loaded.extended_exploration().remaining.any()
    assert lengths["epsilon"] < 1.6 < 2.2 < lengths["ez"], lengths
