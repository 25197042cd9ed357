"""What one NES frame costs on each layer of the env pipeline, against the emulator core, in one process.

    python benchmarks/frame_path.py --frames 3000 --repeats 3

Rounds are interleaved (core, gym-super-mario-bros step, MarioWrapper, core, ...), each playing the same fixed
action sequence (right + jump every 50 frames, resets included), so that a slower moment of the machine hits every
layer alike. Rows, per NES frame:

- core: ``NESEnv._frame_advance`` alone (the C++ emulator, no Python around it);
- gym-super-mario-bros ``step``: the core plus its reward, termination, info dict and RAM fixes (``gym.make``'s
  wrappers included);
- its parts measured alone on the same emulator state: ``_get_info``, ``_get_reward``;
- ``MarioWrapper`` step / frame_skip: the package's pipeline (frame skip 4, 84x84 gray, the classic reward);
- the same with failure restarts on (``set_failure_restarts(0.5, 30)``, as ``DoubleDQN(failure_restarts=0.5)`` sets
  it): an emulator snapshot after every agent step, and half of the episodes after a death restored from one.

The share of the intermediate frames that a leaner frame skip could save is at most what the step costs beyond the
core, less the parts that must still run every frame (the reward state, the termination, the RAM fixes).
"""

import argparse
import time
from collections.abc import Callable

import gym_super_mario_bros  # noqa: F401  (registers the ids)
import gymnasium as gym
import numpy as np

from sb3_mario.wrappers import MarioWrapper

ENV_ID = "SuperMarioBros-1-1-v0"


def actions(n: int) -> list[int]:
    """:return: n frame actions of the right-only set: right, and right + A (jump) every 50th frame"""
    return [2 if i % 50 < 10 else 1 for i in range(n)]


def per_frame(run: Callable[[], int]) -> float:
    """:return: seconds per NES frame of ``run`` (which returns the frames it played)"""
    start = time.perf_counter()
    frames = run()
    return (time.perf_counter() - start) / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    plain = gym.make(ENV_ID)
    nes = plain.unwrapped
    wrapped = MarioWrapper(gym.make(ENV_ID), actions="right_only", frame_skip=4, reward="classic")
    restarting = MarioWrapper(gym.make(ENV_ID), actions="right_only", frame_skip=4, reward="classic")
    restarting.set_failure_restarts(0.5, 30)
    sequence = actions(args.frames)
    buttons = [0b10000000, 0b10000001]  # right, right + A: the NES button bits of right_only's actions 1 and 2

    def core() -> int:
        nes.reset(seed=0)
        for a in sequence:
            nes._frame_advance(buttons[a - 1])
        return len(sequence)

    def smb_step() -> int:
        plain.reset(seed=0)
        for a in sequence:
            _, _, terminated, truncated, _ = plain.step(buttons[a - 1])
            if terminated or truncated:
                plain.reset()
        return len(sequence)

    def info_only() -> int:
        plain.reset(seed=0)
        for _ in sequence:
            nes._get_info()
        return len(sequence)

    def reward_only() -> int:
        plain.reset(seed=0)
        for _ in sequence:
            nes._get_reward()
        return len(sequence)

    def agent_steps(env: MarioWrapper) -> int:
        env.reset(seed=0)
        for a in sequence[::4]:
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
        return len(sequence)

    rows = {
        "core (NESEnv._frame_advance)": core,
        "gym-super-mario-bros step": smb_step,
        "  of it: _get_info": info_only,
        "  of it: _get_reward": reward_only,
        "MarioWrapper step / 4": lambda: agent_steps(wrapped),
        "  the same, failure restarts on": lambda: agent_steps(restarting),
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(args.repeats):
        for name, run in rows.items():
            times[name].append(per_frame(run))
    core_time = float(np.median(times["core (NESEnv._frame_advance)"]))
    print(f"{'per NES frame, one process':34s} {'us':>8s} {'frames/s':>9s} {'core time / this':>17s}")
    for name, values in times.items():
        t = float(np.median(values))
        ratio = f"{core_time / t:17.2f}" if not name.startswith("  of it") else f"{t / core_time:15.1%} of core"
        print(f"{name:34s} {t * 1e6:8.0f} {1 / t:9.0f} {ratio}")
    plain.close()
    wrapped.close()
    restarting.close()


if __name__ == "__main__":
    main()
