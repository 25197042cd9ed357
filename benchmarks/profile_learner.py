"""Where the CPU time of ``DoubleDQN(cuda_graph=True).train`` goes (cProfile), for one n-step setting.

    python benchmarks/profile_learner.py --n-steps 3 --updates 300

A diagnostic for the learner row of benchmarks/speed.py, not a benchmark.
"""

import argparse
import cProfile
import pstats

import torch as th
from speed import filled

from sb3_mario import DoubleDQN, MarioCNN
from sb3_mario.buffers import FrameReplayBuffer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-steps", type=int, default=3)
    parser.add_argument("--updates", type=int, default=300)
    args = parser.parse_args()
    device = "cuda" if th.cuda.is_available() else "cpu"
    model = filled(DoubleDQN, device, gamma=0.9, policy_kwargs=dict(features_extractor_class=MarioCNN),
                   cuda_graph=True, replay_buffer_class=FrameReplayBuffer,
                   replay_buffer_kwargs=dict(storage_device=device, n_steps=args.n_steps, gamma=0.9))  # fmt: skip
    model.train(gradient_steps=20, batch_size=32)  # warm-up and capture
    profiler = cProfile.Profile()
    profiler.runcall(model.train, gradient_steps=args.updates, batch_size=32)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(22)


if __name__ == "__main__":
    main()
