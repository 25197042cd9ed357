"""How far Mario can get on a stage with held actions: a beam search on the emulator, no agent.

    python scripts/reach_search.py SuperMarioBros-1-3-v0 --hold 3 --beam 40 --depth 60

When a trained agent always dies at one place, is the place passable with its action set, and how? The search
plays the gym-super-mario-bros env with ``MarioWrapper``'s action set and frame skip (4 NES frames an agent step,
no no-op start, no sticky actions), one macro at a time: one action held for ``--hold`` agent steps. From each kept
emulator snapshot it tries every action; it drops the macros in which Mario dies, keeps the farthest state of
each cell of the screen (x in steps of 6 pixels, y of 12) and, of those, the ``--beam`` farthest. It prints a line
per 5 macros and, last, one json line: the farthest x reached alive and the agent-step actions that reach it
(they replay on the env: the test does). ``--screen PNG`` also writes the screen where that way ends.
"""

import argparse
import json
from pathlib import Path
from typing import Any

import cv2
import gym_super_mario_bros
import numpy as np
from nes_py.wrappers import JoypadSpace

from sb3_mario.env import check_mario_env_id
from sb3_mario.wrappers import ACTION_SETS, level_x

FRAME_SKIP = 4
CELL = (6, 12)  # pixels of x and y that make one cell: the beam keeps one state per cell


def make_env(env_id: str, actions: str) -> JoypadSpace:
    """
    :param env_id: gym-super-mario-bros id
    :param actions: a ``MarioWrapper`` action set name
    :return: the env with that action set, reset
    """
    check_mario_env_id(env_id)
    env = JoypadSpace(gym_super_mario_bros.make(env_id), ACTION_SETS[actions])
    env.reset(seed=0)
    return env


def agent_step(env: JoypadSpace, action: int) -> tuple[dict[str, Any], bool]:
    """
    :return: the info after ``FRAME_SKIP`` frames of ``action``, and whether Mario died (or the episode ended)
    """
    info: dict[str, Any] = {}
    for _ in range(FRAME_SKIP):
        _, _, terminated, truncated, info = env.step(action)
        if info["is_dying"] or info["is_dead"] or terminated or truncated:
            return info, not info.get("flag_get", False)
    return info, False


def search(env_id: str, actions: str = "right_only", hold: int = 3, beam: int = 40, depth: int = 60) -> dict:
    """
    :param env_id: gym-super-mario-bros id
    :param actions: the action set
    :param hold: agent steps each macro holds its action
    :param beam: states kept per macro
    :param depth: macros at most
    :return: ``env_id``, the farthest ``x_pos`` reached alive, ``flag_get``, and the agent-step ``actions``
    """
    env = make_env(env_id, actions)
    nes = env.unwrapped
    n_actions = len(ACTION_SETS[actions])
    # (emulator snapshot, agent-step actions so far, x_pos, flag_get) of each state kept
    kept: list[tuple[Any, list[int], int, bool]] = [(nes.dump_state(), [], 0, False)]
    best = kept[0]
    for level in range(depth):
        cells: dict[tuple[int, int], tuple[Any, list[int], int, bool]] = {}
        for state, taken, _, _ in kept:
            for action in range(n_actions):
                nes.load_state(state)
                nes.done = False
                died, held = False, 0
                info: dict[str, Any] = {}
                while held < hold and not died and not info.get("flag_get"):
                    info, died = agent_step(env, action)
                    held += 1
                if died:
                    continue
                x = level_x(int(info["x_pos"]))  # a castle's loop sends Mario back, below x = 0 if early
                cell = (x // CELL[0], info["y_pos"] // CELL[1])
                steps = taken + [action] * held  # fewer than hold where the flag came first
                if cell not in cells or cells[cell][2] < x:
                    cells[cell] = (nes.dump_state(), steps, x, info["flag_get"])
        if not cells:
            break
        kept = sorted(cells.values(), key=lambda c: -c[2])[:beam]
        best = max(best, kept[0], key=lambda c: c[2])
        if level % 5 == 4:
            print(f"macro {level + 1}: farthest x {best[2]}, {len(cells)} cells alive", flush=True)
        if best[3]:
            break
    env.close()
    return {"env_id": env_id, "actions_set": actions, "x_pos": best[2], "flag_get": best[3], "actions": best[1]}


def replay_screen(env_id: str, actions: str, steps: list[int]) -> np.ndarray:
    """
    :param env_id: gym-super-mario-bros id
    :param actions: the action set
    :param steps: agent-step actions, as ``search`` returns them
    :return: the screen (RGB) after playing them from the start on a fresh env, as the search played them
    """
    env = make_env(env_id, actions)
    for action in steps:
        agent_step(env, action)
    screen = np.array(env.unwrapped.screen)
    env.close()
    return screen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env_id")
    parser.add_argument("--actions", default="right_only", choices=sorted(ACTION_SETS))
    parser.add_argument("--hold", type=int, default=3, help="agent steps a macro holds its action")
    parser.add_argument("--beam", type=int, default=40, help="states kept per macro")
    parser.add_argument("--depth", type=int, default=60, help="macros at most")
    parser.add_argument("--screen", metavar="PNG", help="also write the screen where the farthest way ends")
    args = parser.parse_args()
    # before the search, which takes minutes: a screen that cannot be written is said at once
    if args.screen and not (args.screen.lower().endswith(".png") and Path(args.screen).resolve().parent.is_dir()):
        parser.error(f"--screen {args.screen!r}: give a .png path in a folder that exists")
    found = search(args.env_id, args.actions, args.hold, args.beam, args.depth)
    if args.screen:
        screen = replay_screen(args.env_id, args.actions, found["actions"])
        if not cv2.imwrite(args.screen, cv2.cvtColor(screen, cv2.COLOR_RGB2BGR)):
            raise SystemExit(f"reach_search.py: could not write {args.screen!r}")
    print(json.dumps(found))


if __name__ == "__main__":
    main()
