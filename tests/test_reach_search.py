"""scripts/reach_search.py on the real emulator: the actions it reports replay to the x position it reports."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import gym_super_mario_bros
import numpy as np
from nes_py.wrappers import JoypadSpace

from sb3_mario.wrappers import ACTION_SETS

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reach_search.py"
#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800


def test_the_actions_found_replay_to_the_x_reported(tmp_path):
    screen = tmp_path / "end.png"
    args = ["SuperMarioBros-1-1-v0", "--hold", "3", "--beam", "3", "--depth", "8", "--screen", str(screen)]
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=HANG_LIMIT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["env_id"] == "SuperMarioBros-1-1-v0" and not found["flag_get"]
    assert len(found["actions"]) == 8 * 3  # 8 macros of 3 agent steps, none of them fatal
    # played again from the start on a fresh env, 4 frames an agent step, Mario alive at that x
    env = JoypadSpace(gym_super_mario_bros.make("SuperMarioBros-1-1-v0"), ACTION_SETS["right_only"])
    env.reset(seed=0)
    for action in found["actions"]:
        for _ in range(4):
            obs, _, terminated, _, info = env.step(action)
            assert not (terminated or info["is_dying"] or info["is_dead"])
    env.close()
    assert info["x_pos"] == found["x_pos"] > 200
    # the screen written is the one where the replay ends
    assert np.array_equal(cv2.cvtColor(cv2.imread(str(screen)), cv2.COLOR_BGR2RGB), obs)


def test_a_wrong_env_id_names_the_right_one():
    proc = subprocess.run([sys.executable, str(SCRIPT), "SuperMarioBros-1-3-v9"], capture_output=True, text=True,
                          timeout=HANG_LIMIT)  # fmt: skip
    assert proc.returncode != 0 and "did you mean 'SuperMarioBros-1-3-v0'?" in proc.stderr


def test_a_screen_path_that_cannot_be_written_is_refused_before_the_search(tmp_path):
    for screen in (tmp_path / "end.jpeg2", tmp_path / "missing" / "end.png"):
        proc = subprocess.run([sys.executable, str(SCRIPT), "SuperMarioBros-1-1-v0", "--depth", "1000", "--screen",
                               str(screen)], capture_output=True, text=True, timeout=HANG_LIMIT)  # fmt: skip
        assert proc.returncode == 2 and "give a .png path in a folder that exists" in proc.stderr
        assert "macro" not in proc.stdout  # refused before the search began
