"""CPU work of the trainer's loop that the fast path's end-to-end profile points to, as it was and as it is now.

    python benchmarks/trainer_overhead.py                   # 2,000 calls a timing, median of 5, in turn
    python benchmarks/trainer_overhead.py --calls 500 --repeats 3

On a GPU the trainer of the package's config waits for its own Python work more than for the GPU
(benchmarks/README.md, "The package's config"). Two pieces of that work, each timed both ways in this process, the
two ways taking turns:

- the prioritized-replay trees of the package's config (300,000 transitions): a train call's new priorities (4
  gradient steps of 64 samples: 256 leaves) and a vec-env step's new transitions (16 leaves), set in the sum tree and
  then the min tree (``SegmentTree.update`` twice), or in both at once (``SegmentTree.update_together``);
- the policy's train/eval mode around a vec-env step of 8 gradient steps in 2 train calls: SB3's loop switches the
  policy to eval mode for the rollout and to train mode in each call (3 ``policy.set_training_mode``, each walking
  every module of both networks); the fast path now switches only on a change (``set_training_mode(policy, mode)``)
  and, its actions coming from ``predict`` or the eval-mode acting copies, not for the rollout: on a GPU, where the
  copies act, never.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.envs import FakeImageEnv

from sb3_mario import DoubleDQN, MarioCNN
from sb3_mario.ddqn.learner import set_training_mode
from sb3_mario.prioritized_replay import SegmentTree

#: the package config's replay buffer (buffer_size), its batch and gradient steps per train call, and its envs
TRANSITIONS, BATCH, STEPS_PER_CALL, N_ENVS = 300_000, 64, 4, 16


def per_call(fn: Callable[[], object], calls: int) -> float:
    """:return: microseconds per call of ``fn`` over ``calls`` calls"""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def tree_cases(rng: np.random.Generator) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """:return: per case, the old and the new way of setting priorities in the two trees of a full buffer"""
    sums, minimums = SegmentTree(TRANSITIONS, np.add, 0.0), SegmentTree(TRANSITIONS, np.minimum, np.inf)
    SegmentTree.update_together([sums, minimums], np.arange(TRANSITIONS), rng.random(TRANSITIONS))

    def train_call() -> tuple[np.ndarray, np.ndarray]:  # a train call's sampled transitions, anywhere in the buffer
        return rng.integers(0, TRANSITIONS, BATCH * STEPS_PER_CALL), rng.random(BATCH * STEPS_PER_CALL)

    def replay_row() -> tuple[np.ndarray, np.ndarray]:  # a vec-env step's transitions, side by side in one row
        return int(rng.integers(0, TRANSITIONS // N_ENVS)) * N_ENVS + np.arange(N_ENVS), rng.random(N_ENVS)

    cases = {}
    for name, draw in (
        ("train call's priorities (256 leaves)", train_call),
        ("vec-env step's rows (16 leaves)", replay_row),
    ):

        def apart(draw: Callable[[], tuple[np.ndarray, np.ndarray]] = draw) -> None:
            indices, values = draw()
            sums.update(indices, values)
            minimums.update(indices, values)

        def together(draw: Callable[[], tuple[np.ndarray, np.ndarray]] = draw) -> None:
            SegmentTree.update_together([sums, minimums], *draw())

        cases[f"trees: a {name}"] = (apart, together)
    return cases


def mode_case() -> tuple[Callable[[], object], Callable[[], object]]:
    """:return: a vec-env step's mode switches, SB3's loop and the fast path's on a GPU"""
    env = FakeImageEnv(n_channels=4, screen_height=84, screen_width=84, discrete=True)
    policy = DoubleDQN("CnnPolicy", env, buffer_size=100, device="cpu",
                       policy_kwargs=dict(features_extractor_class=MarioCNN)).policy  # fmt: skip

    def sb3() -> None:
        policy.set_training_mode(False)  # the rollout
        policy.set_training_mode(True)  # train call 1
        policy.set_training_mode(True)  # train call 2

    def fast_path() -> None:
        set_training_mode(policy, True)
        set_training_mode(policy, True)

    return sb3, fast_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each way (median)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = {**tree_cases(rng), "mode switches of a vec-env step (8 gradient steps)": mode_case()}
    print(f"{'what':60s} {'before (us)':>11s} {'now (us)':>9s} {'ratio':>6s}")
    for name, (old, new) in cases.items():
        timings: tuple[list[float], list[float]] = ([], [])
        for _ in range(args.repeats):  # in turn, so that a busy moment of the machine hits both
            for way, fn in enumerate((old, new)):
                timings[way].append(per_call(fn, args.calls))
        before, now = statistics.median(timings[0]), statistics.median(timings[1])
        print(f"{name:60s} {before:11.1f} {now:9.1f} {before / now:5.2f}x")


if __name__ == "__main__":
    main()
