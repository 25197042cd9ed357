"""Soak test: train DoubleDQN on Mario with SubprocVecEnv for a fixed wall-clock time, sampling memory.

    .venv/bin/python benchmarks/soak_rss.py --minutes 30 --n-envs 2 --buffer-size 20000

Prints, every --every seconds, the elapsed time, env steps, replay-buffer fill, and the resident set size
(RSS) of the trainer and of its env workers. Once the buffer is full the RSS should stay flat.
The CPU box (2 cores) is the reference machine for this figure.
"""

import argparse
import os
import time

from stable_baselines3.common.callbacks import BaseCallback

from sb3_mario import DoubleDQN, MarioCNN, make_mario_env


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RssSampler(BaseCallback):
    def __init__(self, every: float, minutes: float) -> None:
        super().__init__()
        self.every, self.deadline = every, time.monotonic() + 60 * minutes
        self.start = self.last = time.monotonic()
        self.rows: list[tuple[float, int, float, float, float]] = []

    def _on_training_start(self) -> None:
        self._sample()

    def _sample(self) -> None:
        env = self.training_env.unwrapped
        workers = sum(rss_mib(p.pid) for p in getattr(env, "processes", []))
        buffer = self.model.replay_buffer
        fill = (buffer.buffer_size if buffer.full else buffer.pos) / buffer.buffer_size
        row = (time.monotonic() - self.start, self.num_timesteps, fill, rss_mib(os.getpid()), workers)
        self.rows.append(row)
        print(f"t={row[0]:7.0f}s steps={row[1]:8d} buffer={row[2]:5.0%} trainer_rss={row[3]:8.1f} MiB "
              f"workers_rss={row[4]:7.1f} MiB", flush=True)  # fmt: skip

    def _on_step(self) -> bool:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self._sample()
        return now < self.deadline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--every", type=float, default=60)
    parser.add_argument("--n-envs", type=int, default=2)
    parser.add_argument("--buffer-size", type=int, default=20_000)
    args = parser.parse_args()
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=args.n_envs, seed=0, vec_env_cls="subproc")
    model = DoubleDQN(
        "CnnPolicy", env, buffer_size=args.buffer_size, learning_starts=1000, train_freq=1, gradient_steps=1,
        optimize_memory_usage=True, replay_buffer_kwargs=dict(handle_timeout_termination=False),
        policy_kwargs=dict(features_extractor_class=MarioCNN), device="cpu", seed=0,
    )  # fmt: skip
    sampler = RssSampler(args.every, args.minutes)
    model.learn(10**9, callback=sampler)
    sampler._sample()
    full = [row for row in sampler.rows if row[2] >= 1.0]
    if len(full) >= 2:
        first, last = full[0], full[-1]
        print(f"after the buffer filled ({first[0]:.0f}s -> {last[0]:.0f}s, {last[1] - first[1]} steps): "
              f"trainer RSS {first[3]:.1f} -> {last[3]:.1f} MiB ({last[3] - first[3]:+.1f}), "
              f"workers {first[4]:.1f} -> {last[4]:.1f} MiB ({last[4] - first[4]:+.1f})")  # fmt: skip
    env.close()


if __name__ == "__main__":
    main()
