"""Super Mario Bros. env ids and the VecEnv factory."""

import difflib
from typing import Any

import gym_super_mario_bros  # noqa: F401  (registers the SuperMarioBros* ids with gymnasium)
import gymnasium as gym
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecFrameStack

from sb3_mario.wrappers import MarioWrapper

VEC_ENV_CLASSES: dict[str, type[DummyVecEnv] | type[SubprocVecEnv]] = {"dummy": DummyVecEnv, "subproc": SubprocVecEnv}


def mario_env_ids() -> list[str]:
    """
    :return: every env id that gym-super-mario-bros registers (SMB1 stages, SMB2, SMB2 USA, SMB3)
    """
    return sorted(env_id for env_id, spec in gym.envs.registry.items() if is_mario_entry_point(spec.entry_point))


def is_mario_entry_point(entry_point: Any) -> bool:
    """
    :param entry_point: a gymnasium ``EnvSpec.entry_point``
    :return: whether it builds a gym-super-mario-bros env
    """
    return isinstance(entry_point, str) and entry_point.startswith("gym_super_mario_bros")


def check_mario_env_id(env_id: str) -> None:
    """
    Raise a ``ValueError`` with the closest registered Mario id when ``env_id`` is not one.

    :param env_id: e.g. ``"SuperMarioBros-1-1-v0"``
    """
    ids = mario_env_ids()
    if env_id in ids:
        return
    close = difflib.get_close_matches(env_id, ids, n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see sb3_mario.mario_env_ids() for the list."
    raise ValueError(f"{env_id!r} is not a Super Mario Bros. env id registered by gym-super-mario-bros; {hint}")


def make_mario_env(
    env_id: str = "SuperMarioBros-1-1-v0",
    n_envs: int = 1,
    seed: int | None = None,
    frame_stack: int = 4,
    vec_env_cls: str | type[DummyVecEnv] | type[SubprocVecEnv] = "dummy",
    wrapper_kwargs: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    monitor_dir: str | None = None,
    vec_env_kwargs: dict[str, Any] | None = None,
) -> VecEnv:
    """
    Build ``n_envs`` copies of a Mario env with :class:`~sb3_mario.wrappers.MarioWrapper`, each inside SB3's
    ``Monitor``, in a ``DummyVecEnv`` or ``SubprocVecEnv``, then stack ``frame_stack`` frames.

    :param env_id: a gym-super-mario-bros id, e.g. ``"SuperMarioBros-1-1-v0"``
    :param n_envs: number of envs
    :param seed: seed of the first env (env i gets ``seed + i``); ``None`` for random
    :param frame_stack: frames per observation (``VecFrameStack``); 1 disables stacking
    :param vec_env_cls: ``"dummy"``, ``"subproc"`` or a VecEnv class
    :param wrapper_kwargs: keyword arguments of :class:`~sb3_mario.wrappers.MarioWrapper`
        (``actions``, ``frame_skip``, ``reward``, ``noop_max``, ...)
    :param env_kwargs: keyword arguments for ``gym.make`` (e.g. ``render_mode="rgb_array"``)
    :param monitor_dir: where ``Monitor`` writes its csv files (``None``: not written)
    :param vec_env_kwargs: keyword arguments of the VecEnv class (e.g. ``start_method``)
    :return: the vectorized, frame-stacked env
    """
    check_mario_env_id(env_id)
    if isinstance(vec_env_cls, str):
        if vec_env_cls not in VEC_ENV_CLASSES:
            raise ValueError(f"Unknown vec_env_cls {vec_env_cls!r}: choose one of {sorted(VEC_ENV_CLASSES)}.")
        vec_env_cls = VEC_ENV_CLASSES[vec_env_cls]
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}.")
    env = make_vec_env(
        env_id,
        n_envs=n_envs,
        seed=seed,
        wrapper_class=MarioWrapper,
        wrapper_kwargs=wrapper_kwargs or {},
        env_kwargs=env_kwargs,
        monitor_dir=monitor_dir,
        vec_env_cls=vec_env_cls,
        vec_env_kwargs=vec_env_kwargs,
    )
    return VecFrameStack(env, n_stack=frame_stack) if frame_stack > 1 else env
