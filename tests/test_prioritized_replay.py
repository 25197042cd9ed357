"""Prioritized replay draws, weights and updates as Schaul et al. 2016 (proportional) say, against hand-computed
values, and DoubleDQN trains with it."""

import copy
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.buffers import NStepReplayBuffer
from stable_baselines3.common.envs import FakeImageEnv
from test_buffers import STORAGE, fill_both
from test_zoo import TINY, run

from sb3_mario import DoubleDQN, MarioCNN, PrioritizedFrameReplayBuffer, make_mario_env
from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.ddqn.update import double_dqn_step
from sb3_mario.prioritized_replay import SegmentTree

needs_gpu = pytest.mark.skipif(not th.cuda.is_available(), reason="needs a GPU")


def test_segment_trees_sum_take_minimums_and_find_prefix_sums():
    values = np.array([1.0, 2.0, 3.0, 0.0, 4.0])
    sums, minimums = SegmentTree(5, np.add, 0.0), SegmentTree(5, np.minimum, np.inf)
    sums.update(np.arange(5), values)
    minimums.update(np.arange(4), values[:4])
    assert sums.root() == 10.0 and minimums.root() == 0.0
    # leaf i holds [sum(values[:i]), sum(values[:i + 1])): 0 -> [0, 1), 1 -> [1, 3), 2 -> [3, 6), 4 -> [6, 10)
    targets = np.array([0.0, 0.99, 1.0, 2.5, 3.0, 5.99, 6.0, 9.99])
    assert sums.find_prefix_sum(targets).tolist() == [0, 0, 1, 1, 2, 2, 4, 4]
    # repeated leaves in one update: the last value wins, and every parent is the sum of its children again
    sums.update(np.array([2, 2, 0]), np.array([7.0, 0.5, 0.25]))
    assert sums.root() == 0.25 + 2.0 + 0.5 + 0.0 + 4.0
    assert sums.values(np.array([0, 2])).tolist() == [0.25, 0.5]
    minimums.update(np.array([3]), np.array([5.0]))
    assert minimums.root() == 1.0


def test_trees_updated_together_equal_trees_updated_one_after_the_other():
    rng = np.random.default_rng(0)
    together = [SegmentTree(1000, np.add, 0.0), SegmentTree(1000, np.minimum, np.inf)]
    apart = copy.deepcopy(together)
    for size in (1000, 256, 16, 1):  # every leaf, a train call's batch (repeats included), a vec-env step's rows, one
        indices = rng.integers(0, 1000, size) if size < 1000 else np.arange(1000)
        values = rng.random(size)
        SegmentTree.update_together(together, indices, values)
        for tree in apart:
            tree.update(indices, values)
        for a, b in zip(together, apart, strict=True):
            assert np.array_equal(a.nodes, b.nodes)
    assert together[0].root() == pytest.approx(together[0].nodes[together[0].leaves :].sum())
    assert together[1].root() == together[1].nodes[together[1].leaves :].min()


SPACE, ACTIONS = gym.spaces.Box(0, 255, (4, 16, 13), np.uint8), gym.spaces.Discrete(3)  # test_buffers' frames


def prioritized(n_envs: int = 2, steps: int = 60, buffer_size: int = 200, **kwargs) -> PrioritizedFrameReplayBuffer:
    buffer = PrioritizedFrameReplayBuffer(buffer_size, SPACE, ACTIONS, device="cpu", n_envs=n_envs, **kwargs)
    fill_both([buffer], n_envs, steps)
    return buffer


def test_new_transitions_get_the_largest_priority_and_td_errors_set_theirs():
    buffer = prioritized(alpha=0.5, epsilon=0.01, priority_lag=0)
    stored = np.arange(60 * 2)
    # before any update every transition has priority 1 ** alpha: uniform
    assert np.allclose(buffer.probabilities(stored), 1 / 120)
    errors = np.zeros(120, dtype=np.float32)
    errors[[3, 10, 77]] = [3.99, 0.99, 8.99]
    buffer.update_priorities(stored, th.tensor(errors))
    priorities = (errors.astype(np.float64) + 0.01) ** 0.5  # (|delta| + eps) ** alpha
    assert np.allclose(buffer.probabilities(stored), priorities / priorities.sum())
    assert buffer.max_error == pytest.approx(9.0)
    # the next step's transitions (one per env) come in with the largest priority so far: 9 ** 0.5 = 3
    row = buffer.pos
    fill_both([buffer], 2, 1, seed=5)
    assert np.allclose(buffer.sums.values(row * 2 + np.arange(2)), 3.0)


def test_draws_follow_the_priorities_and_weights_correct_them():
    buffer = prioritized(n_envs=1, steps=4, buffer_size=10, alpha=1.0, beta=0.5, epsilon=1e-9, priority_lag=0)
    errors = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)  # P = 0.1, 0.2, 0.3, 0.4
    buffer.update_priorities(np.arange(4), th.tensor(errors))
    np.random.seed(0)
    samples = buffer.sample(40_000)
    counts = np.bincount(samples.indices, minlength=4)
    expected = np.array([0.1, 0.2, 0.3, 0.4]) * 40_000
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))  # within 4 sigma of a binomial count
    # w_i = (N P(i)) ** -beta / max_k w_k = (P(i) / P_min) ** -beta
    weights = samples.weights.numpy().ravel()
    hand = (np.array([0.1, 0.2, 0.3, 0.4]) / 0.1) ** -0.5
    assert np.allclose(weights, hand[samples.indices], rtol=1e-6)
    assert samples.weights.shape == (40_000, 1) and weights.max() == pytest.approx(1.0)
    # beta rises linearly with training progress to beta_final
    buffer.anneal(0.5)
    assert buffer.beta == pytest.approx(0.75)
    buffer.anneal(2.0)
    assert buffer.beta == 1.0


@pytest.mark.parametrize("storage_device", STORAGE)
@pytest.mark.parametrize("n_steps", [1, 3])
def test_a_prioritized_batch_holds_the_transitions_of_its_indices(storage_device, n_steps):
    kwargs = dict(n_steps=n_steps, gamma=0.9, storage_device=storage_device)
    buffer = prioritized(n_envs=3, steps=150, buffer_size=120, **kwargs)  # wrapped round: full
    plain = FrameReplayBuffer(120, buffer.observation_space, buffer.action_space, device="cpu", n_envs=3, **kwargs)
    fill_both([plain], 3, 150)
    buffer.update_priorities(np.arange(120), th.rand(120))
    samples = buffer.sample(64)
    rows, envs = np.divmod(samples.indices, 3)
    expected = plain.samples_at(rows, envs)
    for name in expected._fields:
        a, b = getattr(expected, name), getattr(samples, name)
        assert (a is None and b is None) or np.array_equal(a.cpu().numpy(), b.cpu().numpy()), name


def test_an_n_step_prioritized_batch_equals_sb3s_n_step_transitions():
    buffer = prioritized(n_envs=1, steps=90, buffer_size=100, n_steps=3, gamma=0.9)
    reference = NStepReplayBuffer(100, SPACE, ACTIONS, "cpu", n_envs=1, n_steps=3, gamma=0.9)
    fill_both([reference], 1, 90)
    buffer.update_priorities(np.arange(90), th.rand(90))
    samples = buffer.sample(32)
    expected = reference._get_samples(samples.indices)  # one env: the flat indices are the rows
    for name in expected._fields:
        assert np.allclose(getattr(expected, name).numpy(), getattr(samples, name).numpy()), name


def test_the_weighted_loss_and_the_td_errors_are_hand_computable():
    env = FakeImageEnv(n_channels=4, screen_height=48, screen_width=48, discrete=True)
    model = DoubleDQN("CnnPolicy", env, buffer_size=100, learning_starts=0, device="cpu", seed=0, gamma=0.9,
                      policy_kwargs=dict(features_extractor_class=MarioCNN))  # fmt: skip
    rng = np.random.default_rng(0)
    obs = th.as_tensor(rng.integers(0, 256, (8, 4, 48, 48)), dtype=th.float32) / 255
    next_obs = th.as_tensor(rng.integers(0, 256, (8, 4, 48, 48)), dtype=th.float32) / 255
    actions = th.as_tensor(rng.integers(0, env.action_space.n, (8, 1)))
    rewards = th.as_tensor(rng.normal(size=(8, 1)), dtype=th.float32)
    dones = th.as_tensor(rng.integers(0, 2, (8, 1)), dtype=th.float32)
    weights = th.as_tensor(rng.uniform(0.1, 1.0, (8, 1)), dtype=th.float32)
    policy = model.policy
    with th.no_grad():
        best = policy.q_net(next_obs).argmax(dim=1, keepdim=True)
        target = rewards + (1 - dones) * 0.9 * policy.q_net_target(next_obs).gather(1, best)
        current = policy.q_net(obs).gather(1, actions)
        diff = (current - target).abs()
        huber = th.where(diff < 1, 0.5 * diff**2, diff - 0.5)  # smooth L1, beta = 1
    for w, expected in ((None, huber.mean()), (weights, (weights * huber).mean())):
        copied = copy.deepcopy(policy)
        loss, td_errors = double_dqn_step(copied, obs, actions, next_obs, rewards, dones, 0.9, 10.0, weights=w)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
        assert th.allclose(td_errors, diff, atol=1e-6)
    # weights of 1 are the plain mean
    copied = copy.deepcopy(policy)
    loss, _ = double_dqn_step(copied, obs, actions, next_obs, rewards, dones, 0.9, 10.0, weights=th.ones(8, 1))
    assert loss.item() == pytest.approx(huber.mean().item(), rel=1e-6)


def test_new_priorities_take_effect_priority_lag_calls_later_and_pending_ones_survive_a_pickle():
    buffer = prioritized(alpha=1.0, epsilon=1e-9, priority_lag=2)
    calls = [(np.array([0, 1]), [5.0, 6.0]), (np.array([1, 2]), [7.0, 8.0]), (np.array([3]), [9.0])]
    in_effect = []
    for indices, errors in calls:
        buffer.update_priorities(indices, th.tensor(errors))
        in_effect.append(buffer.sums.values(np.arange(4)).round(6).tolist())
    # the first two calls change nothing; the third applies the first; the uniform start is priority 1
    assert in_effect == [[1, 1, 1, 1], [1, 1, 1, 1], [5, 6, 1, 1]]
    assert buffer.max_error == pytest.approx(6.0)
    # a pickled buffer keeps the two calls still pending, and applies them as the original does
    copied = copy.deepcopy(buffer)
    for b in (buffer, copied):
        b.flush_priorities()  # in order: the second call's 7.0 for index 1 replaces the first's 6.0
        assert b.sums.values(np.arange(4)).round(6).tolist() == [5, 7, 8, 9]
    assert copied.max_error == buffer.max_error == pytest.approx(9.0)
    assert np.array_equal(copied.minimums.nodes, buffer.minimums.nodes)


def test_bad_settings_name_their_range():
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\]"):
        prioritized(alpha=1.5)
    with pytest.raises(ValueError, match="epsilon must be > 0"):
        prioritized(epsilon=0.0)
    with pytest.raises(ValueError, match="priority_lag must be >= 0"):
        prioritized(priority_lag=-1)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_gpu)])
def test_graphed_prioritized_steps_equal_eager_ones(device):
    env = FakeImageEnv(n_channels=4, screen_height=48, screen_width=48, discrete=True)
    models = []
    for cuda_graph in (False, True):
        model = DoubleDQN("CnnPolicy", env, buffer_size=500, learning_starts=10_000, device=device, seed=0, gamma=0.9,
                          cuda_graph=cuda_graph, replay_buffer_class=PrioritizedFrameReplayBuffer,
                          replay_buffer_kwargs=dict(n_steps=3, gamma=0.9),
                          policy_kwargs=dict(features_extractor_class=MarioCNN))  # fmt: skip
        model.learn(300)  # fills the buffer, no gradient step yet
        models.append(model)
    plain, fast = models
    fast.learner.sample_chunk = 1
    fast.policy.load_state_dict(plain.policy.state_dict())
    fast.replay_buffer = copy.deepcopy(plain.replay_buffer)
    for model in models:
        np.random.seed(7)
        model.train(gradient_steps=4, batch_size=32)
        model.replay_buffer.flush_priorities()
    rtol = 1e-5 if device == "cpu" else 1e-4
    for (name, a), b in zip(plain.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True):
        assert th.allclose(a, b, rtol=rtol, atol=1e-6), name
    changed = plain.replay_buffer.sums.values(np.arange(300)) != 1.0
    assert changed.any(), "the sampled transitions' priorities were updated"
    assert np.allclose(plain.replay_buffer.sums.nodes, fast.replay_buffer.sums.nodes, rtol=1e-3)


@pytest.mark.slow
def test_doubledqn_trains_on_mario_with_prioritized_replay_and_its_buffer_saves(tmp_path):
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=2, frame_stack=4, seed=0)
    model = DoubleDQN("CnnPolicy", env, buffer_size=2000, learning_starts=100, batch_size=16, gradient_steps=2,
                      gamma=0.9, replay_buffer_class=PrioritizedFrameReplayBuffer,
                      replay_buffer_kwargs=dict(n_steps=3, gamma=0.9),
                      policy_kwargs=dict(features_extractor_class=MarioCNN), device="cpu", seed=0)  # fmt: skip
    model.learn(400)
    buffer = model.replay_buffer
    assert isinstance(buffer, PrioritizedFrameReplayBuffer)
    priorities = buffer.sums.values(np.arange(buffer.pos * buffer.n_envs))
    assert len(np.unique(priorities)) > 100, "sampled transitions took their TD errors as priorities"
    assert buffer.beta == pytest.approx(1.0)  # learn(400) ran to the end of its progress
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.load_replay_buffer(tmp_path / "buffer.pkl")
    loaded = model.replay_buffer
    assert isinstance(loaded, PrioritizedFrameReplayBuffer) and loaded is not buffer
    assert np.array_equal(loaded.sums.nodes, buffer.sums.nodes)
    assert np.array_equal(loaded.minimums.nodes, buffer.minimums.nodes) and loaded.max_error == buffer.max_error
    model.learn(100, reset_num_timesteps=False)  # goes on training with the loaded buffer
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("env_id", ["SuperMarioBros-1-1-v0", "SuperMarioBros-1-3-v0"])
def test_rl_zoo_trains_with_the_prioritized_benchmark_config(env_id, tmp_path):
    conf = Path(__file__).resolve().parent.parent / "benchmarks" / "configs" / "ddqn_prioritized.yml"
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", env_id, "-n", "300", "-f", "logs",
              "--conf-file", str(conf), *TINY, cwd=tmp_path)  # fmt: skip
    assert "Replay buffer: PrioritizedFrameReplayBuffer" in out
    assert (tmp_path / "logs" / "ddqn" / f"{env_id}_1" / f"{env_id}.zip").is_file()
