"""benchmarks/e2e_breakdown.py --package-config times the model and envs of the package's 1-1 config."""

import os
import sys
import time
from pathlib import Path

import pytest

from sb3_mario import MarioCNN, PrioritizedFrameReplayBuffer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))  # as when the script runs: it imports benchmarks/speed.py as `speed`
import e2e_breakdown  # noqa: E402


def test_the_package_config_builds_the_main_command_s_model_and_envs():
    section = e2e_breakdown.package_section()
    wrapper_kwargs = section["env_wrapper"][0]["sb3_mario.wrappers.MarioWrapper"]
    assert wrapper_kwargs["sticky_actions"] > 0 and section["failure_restarts"] > 0  # what makes it differ
    section["buffer_size"] = 1000  # not the config's 2 GiB: the rest is what this checks
    model, env = e2e_breakdown.package_model(section, n_envs=2, device="cpu")
    try:
        assert isinstance(model.replay_buffer, PrioritizedFrameReplayBuffer)
        assert isinstance(model.policy.q_net.features_extractor, MarioCNN)
        for key in ("batch_size", "gradient_steps", "target_update_interval", "gamma", "learning_starts",
                    "failure_restarts", "async_envs"):  # fmt: skip
            assert getattr(model, key) == section[key], key
        assert model.train_freq.frequency == section["train_freq"]
        # a constant learning rate at the schedule's start, epsilon at its floor from the first step
        assert model.lr_schedule(0.5) == pytest.approx(float(section["learning_rate"].removeprefix("lin_")))
        assert model.exploration_schedule(1.0) == pytest.approx(section["exploration_final_eps"])
        assert env.get_attr("sticky_actions") == [wrapper_kwargs["sticky_actions"]] * 2
        assert model.observation_space.shape == (section["frame_stack"], 84, 84)  # stacked, channels first
    finally:
        env.close()


def test_gpu_utilization_reads_nvidia_smi_s_samples(tmp_path, monkeypatch):
    # a stand-in nvidia-smi that prints a utilization sample every 50 ms, as `--query-gpu ... -lms` does
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\nwhile true; do echo 40; echo 60; sleep 0.05; done\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(e2e_breakdown.th.cuda, "is_available", lambda: True)
    monkeypatch.setattr(e2e_breakdown.th.cuda, "current_device", lambda: 0)
    gpu = e2e_breakdown.GpuUtilization()
    gpu.start()
    time.sleep(0.3)
    samples = gpu.stop()
    assert samples and set(samples) <= {40.0, 60.0}
    monkeypatch.setattr(e2e_breakdown.th.cuda, "is_available", lambda: False)  # no GPU: no samples, no process
    none = e2e_breakdown.GpuUtilization()
    none.start()
    assert none.stop() == []
