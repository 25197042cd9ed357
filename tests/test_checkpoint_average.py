"""benchmarks/checkpoint_average.py: weight snapshots during a real run, and the means it writes from them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch as th

from sb3_mario import DoubleDQN, make_mario_env
from sb3_mario.weights import load_weights

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.checkpoint_average import WeightSnapshots  # noqa: E402

ENV_ID = "SuperMarioBros-1-1-v0"
#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snapshots")
    env = make_mario_env(ENV_ID, n_envs=2, seed=0, wrapper_kwargs=dict(sticky_actions=0.25))
    try:
        model = DoubleDQN("CnnPolicy", env, buffer_size=200, learning_starts=20, device="cpu", seed=0)
        model.learn(92, callback=WeightSnapshots(str(folder), every=25))
    finally:
        env.close()
    return folder


@pytest.mark.slow
def test_snapshots_come_every_so_many_steps_with_the_training_pipeline(snapshots):
    # 2 envs: 2 agent steps per call, so the first snapshot at or after each multiple of 25
    assert sorted(p.name for p in snapshots.glob("*.pt")) == [f"rl_model_{s}_steps.pt" for s in (26, 50, 76)]
    policy, config = load_weights(snapshots / "rl_model_50_steps.pt")
    assert config["env_id"] == ENV_ID and config["num_timesteps"] == 50
    assert config["wrapper_kwargs"]["sticky_actions"] == 0.25 and config["frame_stack"] == 4
    # training went on between two snapshots (learning started at 20 steps)
    first = load_weights(snapshots / "rl_model_26_steps.pt")[0].state_dict()
    assert any(not th.equal(first[k], v) for k, v in policy.state_dict().items())


@pytest.mark.slow
def test_save_writes_the_element_wise_mean_of_each_window_named_by_its_newest(snapshots, tmp_path):
    args = [str(ROOT / "benchmarks" / "checkpoint_average.py"), *map(str, sorted(snapshots.glob("*.pt"))),
            "--window", "2", "--every", "38", "--save", str(tmp_path)]  # fmt: skip
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=HANG_LIMIT, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # windows (26, 50) and (50, 76): only the one whose newest member's steps are a multiple of 38
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rl_model_76_steps.json", "rl_model_76_steps.pt"]
    mean = th.load(tmp_path / "rl_model_76_steps.pt", weights_only=True)
    a, b = (th.load(snapshots / f"rl_model_{s}_steps.pt", weights_only=True) for s in (50, 76))
    for key, value in mean.items():
        if value.is_floating_point():
            assert th.allclose(value, (a[key] + b[key]) / 2, atol=1e-7), key
    config = json.loads((tmp_path / "rl_model_76_steps.json").read_text())
    assert config["averaged"] == ["rl_model_50_steps", "rl_model_76_steps"] and config["num_timesteps"] == 76
    assert os.stat(tmp_path / "rl_model_76_steps.pt").st_mtime == os.stat(snapshots / "rl_model_76_steps.pt").st_mtime
    policy, config = load_weights(tmp_path / "rl_model_76_steps.pt")  # plays as any exported checkpoint
    observation = np.zeros(config["observation_space"]["shape"], np.uint8)
    assert int(policy.predict(observation, deterministic=True)[0]) in range(config["n_actions"])


def test_snapshots_need_a_positive_interval(tmp_path):
    with pytest.raises(ValueError, match="every must be >= 1"):
        WeightSnapshots(str(tmp_path), every=0)
