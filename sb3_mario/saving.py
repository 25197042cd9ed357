"""Loading models safely: checks that name the problem, and the pipeline a model was trained with."""

import json
import zipfile
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm

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


def load_model(path: str | Path, algo: str = "ddqn", device: str = "auto") -> tuple[BaseAlgorithm, dict[str, Any]]:
    """
    Load a model for evaluation, with the env pipeline it was trained with when that is known.

    :param path: an SB3 ``.zip``
    :param algo: ``"ddqn"``, ``"dqn"`` or ``"qrdqn"``
    :param device: torch device
    :return: the model and a dict with ``wrapper_kwargs`` and ``frame_stack`` when found (rl-zoo's config.yml
        next to the model)
    """
    path = Path(path)
    check_model_zip(path, algo)
    model = algorithm_class(algo).load(path, device=device)
    return model, zoo_pipeline(path)


def zoo_pipeline(model_path: Path) -> dict[str, Any]:
    """
    Read the Mario wrapper kwargs and frame stack from the ``config.yml`` rl-zoo saves next to a model
    (``logs/<algo>/<env>_<run>/<env>/config.yml``).

    :param model_path: the model zip inside an rl-zoo run folder
    :return: ``{"wrapper_kwargs": ..., "frame_stack": ...}`` for what was found, else ``{}``
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
        return pipeline
    return {}
