import importlib.util
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th


class VectorEnv(gym.Env):
    """A tiny env with 2-D float observations and 2 actions, for hand-built Q-learning cases."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


@pytest.fixture
def vector_env():
    return VectorEnv()


@pytest.fixture(scope="session", autouse=True)
def _sb3_logs_in_tmp(tmp_path_factory):
    # SB3's logger makes a folder in the system temp dir on every learn() without tensorboard_log;
    # SB3_LOGDIR (inherited by the rl-zoo subprocesses too) keeps those inside pytest's own tmp dir
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
        yield


@pytest.fixture(autouse=True)
def _few_threads():
    # the CI box has 2 cores; keep torch from oversubscribing them when tests run subprocesses
    th.set_num_threads(1)


@pytest.fixture(scope="session")
def learning_curve():
    """``scripts/learning_curve.py`` as a module, for tests of its functions"""
    script = Path(__file__).resolve().parent.parent / "scripts" / "learning_curve.py"
    spec = importlib.util.spec_from_file_location("learning_curve", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
