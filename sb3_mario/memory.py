"""Memory checked up front: what a replay buffer fills once full, against what the machine has."""

import gymnasium as gym
import numpy as np


def replay_buffer_bytes(
    buffer_size: int,
    observation_space: gym.Space,
    action_space: gym.Space,
    optimize_memory_usage: bool = False,
) -> int:
    """
    Bytes that SB3's ``ReplayBuffer`` fills once it is full: observations (twice, unless
    ``optimize_memory_usage``), actions, rewards, dones and timeouts.

    :param buffer_size: number of transitions
    :param observation_space: the (possibly frame-stacked, transposed) observation space
    :param action_space: the action space
    :param optimize_memory_usage: whether next observations share the observation array
    :return: the estimate in bytes
    """
    obs = int(np.prod(observation_space.shape or (1,))) * np.dtype(observation_space.dtype or np.float32).itemsize
    act = int(np.prod(action_space.shape or (1,))) * np.dtype(action_space.dtype or np.int64).itemsize
    per_transition = obs * (1 if optimize_memory_usage else 2) + act + 4 + 4 + 4  # float32 reward, done, timeout
    return buffer_size * per_transition


def available_memory_bytes() -> int | None:
    """:return: the memory the kernel can give without swapping (``MemAvailable``), or None if unknown"""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return None


def check_replay_memory(needed: int, buffer_size: int, available: int | None = None, where: str = "RAM") -> None:
    """
    Stop before allocating a replay buffer that cannot fit, rather than dying hours later when it fills.

    :param needed: bytes the full buffer needs (:func:`replay_buffer_bytes`)
    :param buffer_size: the ``buffer_size`` hyperparameter, for the message
    :param available: available bytes (default: :func:`available_memory_bytes`, the RAM)
    :param where: what ``available`` measures, for the message (``"RAM"``, ``"GPU memory"``)
    """
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > available:
        gib = 1024**3
        raise MemoryError(
            f"The replay buffer (buffer_size={buffer_size}) needs {needed / gib:.2f} GiB ({needed} bytes) of {where} "
            f"once full, but only {available / gib:.2f} GiB ({available} bytes) are available. Lower buffer_size, set "
            "optimize_memory_usage=True (with replay_buffer_kwargs=dict(handle_timeout_termination=False)), "
            "or use a machine with more memory."
        )
