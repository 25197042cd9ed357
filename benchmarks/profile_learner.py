"""Where the CPU time of ``DoubleDQN(cuda_graph=True).train`` goes (cProfile), for one n-step setting.

    python benchmarks/profile_learner.py --n-steps 3 --updates 300
    python benchmarks/profile_learner.py --prioritized --batch-size 64   # the package config's replay and batch

A diagnostic for the learner row of benchmarks/speed.py, not a benchmark.
"""

import argparse
import cProfile
import pstats

import torch as th
from speed import filled

from sb3_mario import DoubleDQN, MarioCNN
from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.prioritized_replay import PrioritizedFrameReplayBuffer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-steps", type=int, default=3)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--prioritized", action="store_true", help="PrioritizedFrameReplayBuffer (alpha 0.6)")
    args = parser.parse_args()
    device = "cuda" if th.cuda.is_available() else "cpu"
    model = filled(DoubleDQN, device, gamma=0.9, policy_kwargs=dict(features_extractor_class=MarioCNN),
                   cuda_graph=True,
                   replay_buffer_class=PrioritizedFrameReplayBuffer if args.prioritized else FrameReplayBuffer,
                   replay_buffer_kwargs=dict(storage_device=device, n_steps=args.n_steps, gamma=0.9))  # fmt: skip
    model.train(gradient_steps=20, batch_size=args.batch_size)  # warm-up and capture
    profiler = cProfile.Profile()
    profiler.runcall(model.train, gradient_steps=args.updates, batch_size=args.batch_size)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(22)


if __name__ == "__main__":
    main()
