"""Gradient steps that run while the env workers step: ``DoubleDQN(overlap_env_step=True)``.

SB3 alternates: step every env (the emulators work, the GPU idles), then train (the GPU works, the emulators
idle). With ``SubprocVecEnv`` the two can overlap: send the actions (``step_async``), take the gradient
steps that SB3 asked for after the previous rollout, then collect the observations (``step_wait``).
Each gradient step then sees the replay buffer as it was one vec-env step earlier; nothing else changes.
"""

from collections.abc import Callable

from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvStepReturn


class OverlapVecEnv(VecEnvWrapper):
    """
    Calls ``while_stepping()`` between ``step_async`` and ``step_wait`` of the wrapped VecEnv.

    :param venv: the training VecEnv
    :param while_stepping: work to do while the envs step (the pending gradient steps)
    """

    def __init__(self, venv: VecEnv, while_stepping: Callable[[], object]) -> None:
        super().__init__(venv)
        self.while_stepping = while_stepping

    def reset(self):
        return self.venv.reset()

    def step_async(self, actions) -> None:
        self.venv.step_async(actions)

    def step_wait(self) -> VecEnvStepReturn:
        self.while_stepping()
        return self.venv.step_wait()
