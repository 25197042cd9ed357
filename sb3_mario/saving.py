"""Saving and loading safely: atomic writes, checks that name the problem, memory checked up front."""

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import gymnasium as gym
import numpy as np
import torch as th
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

#: algorithms that ``--algo`` may name, as in rl-zoo
ALGORITHMS = ("ddqn", "dqn", "qrdqn")
#: modules the saved ``policy_class`` of each algorithm comes from
POLICY_MODULES = {
    "ddqn": "stable_baselines3.dqn.policies",
    "dqn": "stable_baselines3.dqn.policies",
    "qrdqn": "sb3_contrib.qrdqn.policies",
}


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """
    :param algo: ``"ddqn"``, ``"dqn"`` or ``"qrdqn"``
    :return: the algorithm class
    """
    if algo == "ddqn":
        from sb3_mario.ddqn import DoubleDQN

        return DoubleDQN
    if algo == "dqn":
        from stable_baselines3 import DQN

        return DQN
    if algo == "qrdqn":
        from sb3_contrib import QRDQN

        return QRDQN
    raise ValueError(f"Unknown algorithm {algo!r}: choose one of {list(ALGORITHMS)}.")


def check_model_zip(path: str | Path, algo: str) -> None:
    """
    Raise a ``ValueError`` that names the problem when ``path`` is not a model zip that ``algo`` can load:
    missing file, corrupt or truncated zip, or a zip saved by another algorithm.

    :param path: the ``.zip`` file (SB3 adds the suffix when it is missing)
    :param algo: ``"ddqn"``, ``"dqn"`` or ``"qrdqn"``
    """
    path = Path(path)
    if not path.exists() and path.with_suffix(".zip").exists():
        path = path.with_suffix(".zip")
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}. Check the path (rl-zoo saves to logs/<algo>/<env>_<run>/).")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError, OSError) as exc:
        raise ValueError(
            f"{path} is not a readable Stable-Baselines3 model zip ({exc}). It may have been cut short by an "
            "interrupted save or copy: load the previous checkpoint (rl-zoo: rl_model_<steps>_steps.zip) instead."
        ) from exc
    saved_module = data.get("policy_class", {}).get("__module__", "unknown")
    if algo in POLICY_MODULES and saved_module != POLICY_MODULES[algo]:
        raise ValueError(
            f"{path} was saved by another algorithm (its policy comes from {saved_module}), not by {algo}. "
            "Load it with the class that saved it (rl-zoo: pass the matching --algo)."
        )


def load_model(
    path: str | Path, algo: str = "ddqn", device: str = "auto"
) -> tuple[BaseAlgorithm | BasePolicy, dict[str, Any]]:
    """
    Load a model for evaluation, with the env pipeline it was trained with when that is known.

    :param path: an SB3 ``.zip``, or weights exported by :func:`export_weights` (``.pt``, with its ``.json``)
    :param algo: ``"ddqn"``, ``"dqn"`` or ``"qrdqn"`` (for a ``.zip``)
    :param device: torch device
    :return: the model (a policy for exported weights; both have ``predict``) and a dict with
        ``wrapper_kwargs`` and ``frame_stack`` when known (the export's json, or rl-zoo's config.yml next to a zip)
    """
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        return load_weights(path, device=device)
    check_model_zip(path, algo)
    model = algorithm_class(algo).load(path, device=device)
    return model, zoo_pipeline(path)


def zoo_pipeline(model_path: Path) -> dict[str, Any]:
    """
    Read the Mario wrapper kwargs and frame stack from the ``config.yml`` rl-zoo saves next to a model
    (``logs/<algo>/<env>_<run>/<env>/config.yml``).

    :param model_path: the model zip inside an rl-zoo run folder
    :return: ``{"wrapper_kwargs": ..., "frame_stack": ..., "env_id": ...}`` for what was found, else ``{}``
    """
    for config in sorted(model_path.parent.glob("*/config.yml")):
        with open(config) as f:
            saved = dict(yaml.load(f, Loader=yaml.UnsafeLoader))  # written by rl-zoo itself, as enjoy reads it
        pipeline: dict[str, Any] = {}
        wrapper = saved.get("env_wrapper")
        for entry in wrapper if isinstance(wrapper, list) else [wrapper]:
            if isinstance(entry, dict) and "sb3_mario.wrappers.MarioWrapper" in entry:
                pipeline["wrapper_kwargs"] = dict(entry["sb3_mario.wrappers.MarioWrapper"] or {})
        if saved.get("frame_stack"):
            pipeline["frame_stack"] = int(saved["frame_stack"])
        args = config.parent / "args.yml"
        if args.is_file():
            with open(args) as f:
                env_id = dict(yaml.load(f, Loader=yaml.UnsafeLoader)).get("env")
            if env_id:
                pipeline["env_id"] = str(env_id)
        return pipeline
    return {}


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """
    Write a file so that ``path`` is either its old content or the complete new one, never a partial file:
    write to a temporary file in the same folder, flush it to disk, then rename it over ``path``.

    :param path: the final file
    :return: a context manager giving the binary file handle to write to
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600: give the file the permissions a plain open() would (or the old file's)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def with_suffix(path: str | Path, suffix: str) -> Path:
    """
    :param path: a file path, with or without ``suffix``
    :param suffix: e.g. ``".zip"``
    :return: the path ending in ``suffix``, as SB3 names its files
    """
    path = Path(path)
    return path if path.suffix == suffix else path.with_name(path.name + suffix)


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


WEIGHTS_FORMAT = "sb3-mario-q-network-1"


def _features_extractors() -> dict[str, type]:
    """:return: the features extractors that exported weights may use, by the name the json records"""
    from stable_baselines3.common.torch_layers import FlattenExtractor, NatureCNN

    from sb3_mario.cnn import MarioCNN

    return {"MarioCNN": MarioCNN, "NatureCNN": NatureCNN, "FlattenExtractor": FlattenExtractor}


def export_weights(
    model: BaseAlgorithm,
    path: str | Path,
    env_id: str | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
    frame_stack: int = 4,
) -> tuple[Path, Path]:
    """
    Export a DoubleDQN/DQN Q-network as plain tensors (``.pt``, loadable with ``torch.load(weights_only=True)``)
    and a small json config: a file format that runs no code when loaded, unlike SB3's pickled ``.zip``.

    :param model: a trained DoubleDQN or DQN with a ``MlpPolicy`` or ``CnnPolicy`` (NatureCNN or MarioCNN)
    :param path: the file stem; ``.pt`` and ``.json`` are written next to each other
    :param env_id: the env the model was trained on, for the record and for evaluation
    :param wrapper_kwargs: the MarioWrapper arguments it was trained with
    :param frame_stack: frames per observation it was trained with
    :return: the paths of the ``.pt`` and ``.json`` files
    """
    policy = model.policy
    extractor = type(policy.q_net.features_extractor)  # type: ignore[union-attr]
    extractors = {cls: name for name, cls in _features_extractors().items()}
    if extractor not in extractors or not isinstance(model.observation_space, gym.spaces.Box):
        raise ValueError(
            f"export_weights supports Box observations with {sorted(extractors.values())}, got {extractor}."
        )
    assert isinstance(model.action_space, gym.spaces.Discrete)
    config = {
        "format": WEIGHTS_FORMAT,
        "algorithm": type(model).__name__,
        "observation_space": {
            "shape": list(model.observation_space.shape),
            "dtype": str(model.observation_space.dtype),
            "low": float(np.min(model.observation_space.low)),
            "high": float(np.max(model.observation_space.high)),
        },
        "n_actions": int(model.action_space.n),
        "features_extractor": extractors[extractor],
        "features_dim": int(policy.q_net.features_dim),  # type: ignore[union-attr, arg-type]
        "net_arch": list(policy.net_arch),  # type: ignore[arg-type]
        "normalize_images": bool(policy.normalize_images),
        "env_id": env_id,
        "wrapper_kwargs": wrapper_kwargs or {},
        "frame_stack": frame_stack,
        "num_timesteps": int(model.num_timesteps),
    }
    stem = Path(path).with_suffix("")
    pt, js = stem.with_suffix(".pt"), stem.with_suffix(".json")
    state = {k: v.detach().cpu().contiguous() for k, v in policy.q_net.state_dict().items()}  # type: ignore[union-attr]
    with atomic_write(pt) as f:
        th.save(state, f)
    with atomic_write(js) as f:
        f.write(json.dumps(config, indent=2).encode())
    return pt, js


def load_weights(path: str | Path, device: str = "cpu") -> tuple[BasePolicy, dict[str, Any]]:
    """
    Load weights written by :func:`export_weights` into a DQN policy, without unpickling any code.

    :param path: the ``.pt`` (or ``.json``) file
    :param device: torch device
    :return: the policy (``policy.predict(obs, deterministic=True)`` plays greedily) and the json config
    """
    from stable_baselines3.common.torch_layers import FlattenExtractor
    from stable_baselines3.dqn.policies import DQNPolicy

    stem = Path(path).with_suffix("")
    pt, js = stem.with_suffix(".pt"), stem.with_suffix(".json")
    try:
        config = json.loads(js.read_text())
        if config.get("format") != WEIGHTS_FORMAT:
            raise ValueError(f"unknown format {config.get('format')!r}")
        space = config["observation_space"]
        observation_space = gym.spaces.Box(space["low"], space["high"], tuple(space["shape"]), np.dtype(space["dtype"]))
        extractor = _features_extractors()[config["features_extractor"]]
        policy = DQNPolicy(
            observation_space,
            gym.spaces.Discrete(config["n_actions"]),
            lr_schedule=lambda _: 0.0,
            net_arch=config["net_arch"],
            features_extractor_class=extractor,
            features_extractor_kwargs={} if extractor is FlattenExtractor else {"features_dim": config["features_dim"]},
            normalize_images=config["normalize_images"],
        )
        state = th.load(pt, map_location="cpu", weights_only=True)
        policy.q_net.load_state_dict(state)
        policy.q_net_target.load_state_dict(state)
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{pt} / {js} are not weights exported by sb3_mario.saving.export_weights ({exc}). Export them again "
            "from the .zip with export_weights(DoubleDQN.load(zip), path)."
        ) from exc
    policy.set_training_mode(False)
    return policy.to(device), config
