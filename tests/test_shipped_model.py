"""The shipped agent: loads without unpickling code, reaches the flag of World 1-1 on the CPU."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sb3_mario import DoubleDQN, make_mario_env
from sb3_mario.evaluation import evaluate_mario
from sb3_mario.record import record
from sb3_mario.weights import load_weights

pytestmark = pytest.mark.slow  # real subprocesses or training runs

#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800

MODELS = Path(__file__).resolve().parent.parent / "models"
ZOO_ZIP = MODELS / "ddqn" / "SuperMarioBros-1-1-v0_1" / "SuperMarioBros-1-1-v0.zip"
CLEARING_SEED = 0  # one of the 18 seeds of 0..19 on which the shipped agent clears (README)


def test_shipped_weights_reach_the_flag():
    policy, config = load_weights(MODELS / "mario_ddqn.pt")
    assert config["env_id"] == "SuperMarioBros-1-1-v0" and config["num_timesteps"] == 1_400_304
    env = make_mario_env(config["env_id"], n_envs=1, frame_stack=config["frame_stack"],
                         wrapper_kwargs=config["wrapper_kwargs"])  # fmt: skip
    result = evaluate_mario(policy, env, n_episodes=1, first_seed=CLEARING_SEED)
    env.close()
    assert result.clears == [True] and result.max_x_pos[0] > 3100


def test_shipped_zoo_zip_predicts_like_the_weights():
    policy, _config = load_weights(MODELS / "mario_ddqn.pt")
    model = DoubleDQN.load(ZOO_ZIP, device="cpu")
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (16, 4, 84, 84), dtype=np.uint8)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], policy.predict(obs, deterministic=True)[0])
    assert ZOO_ZIP.stat().st_size < 16 * 1024**2 and (MODELS / "mario_ddqn.pt").stat().st_size < 16 * 1024**2


def test_zoo_enjoy_runs_the_shipped_agent(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rl_zoo3.enjoy", "--algo", "ddqn", "--env", "SuperMarioBros-1-1-v0", "-f", str(MODELS),
         "--exp-id", "1", "--no-render", "-n", "100"],
        cwd=tmp_path, capture_output=True, text=True, timeout=HANG_LIMIT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SuperMarioBros-1-1-v0.zip" in proc.stdout


def test_record_writes_a_gif_of_the_clear(tmp_path):
    result = record(str(MODELS / "mario_ddqn.pt"), str(tmp_path / "mario.gif"), seed=CLEARING_SEED, every=10)
    assert result["flag_get"] and (tmp_path / "mario.gif").read_bytes()[:6] == b"GIF89a"
