"""CPU work of the trainer's loop that the fast path's end-to-end profile points to, as it was and as it is now.

    python benchmarks/trainer_overhead.py                   # 2,000 calls a timing, median of 5, in turn
    python benchmarks/trainer_overhead.py --calls 500 --repeats 3

On a GPU the trainer of the package's config waits for its own Python work more than for the GPU
(benchmarks/README.md, "The package's config"). Two pieces of that work, each timed both ways in this process, the
two ways taking turns:

- the prioritized-replay trees of the package's config (300,000 transitions): a train call's new priorities
  (``SAMPLE_CHUNK`` gradient steps of 64 samples) and a vec-env step's new transitions (16 leaves), set in the sum
  tree and then the min tree (``SegmentTree.update`` twice), or in both at once (``SegmentTree.update_together``);
- the policy's train/eval mode around a vec-env step of the config's 8 gradient steps, ``SAMPLE_CHUNK`` a train
  call: SB3's loop switches the policy to eval mode for the rollout and to train mode in each call (each
  ``policy.set_training_mode`` walking every module of both networks); the fast path now switches only on a change
  (``set_training_mode(policy, mode)``) and, its actions coming from ``predict`` or the eval-mode acting copies, not
  for the rollout: on a GPU, where the copies act, never.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from stable_baselines3.common.envs import FakeImageEnv

from sb3_mario import DoubleDQN, MarioCNN
from sb3_mario.ddqn.learner import SAMPLE_CHUNK, set_training_mode
from sb3_mario.prioritized_replay import SegmentTree

#: the package config's replay buffer (buffer_size), its batch, gradient steps per vec-env step and envs
TRANSITIONS, BATCH, GRADIENT_STEPS, N_ENVS = 300_000, 64, 8, 16
#: gradient steps per train call on the fast path (async envs, CUDA graph), and train calls per vec-env step
STEPS_PER_CALL = min(SAMPLE_CHUNK, GRADIENT_STEPS)
CALLS = -(-GRADIENT_STEPS // STEPS_PER_CALL)


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

    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}
    for name, draw in (
        (f"train call's priorities ({BATCH * STEPS_PER_CALL} leaves)", train_call),
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
        for _ in range(CALLS):
            policy.set_training_mode(True)  # each train call

    def fast_path() -> None:
        for _ in range(CALLS):
            set_training_mode(policy, True)

    return sb3, fast_path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000, help="calls per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each way (median)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    cases = {**tree_cases(rng), f"mode switches of a vec-env step ({CALLS} train call(s))": mode_case()}
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
