"""Loading a saved agent for evaluation: an SB3 zip (checked first) or a weights-only export, with the env
pipeline it was trained with."""

from pathlib import Path
from typing import Any

import yaml
from sb3_contrib import QRDQN
from stable_baselines3 import DQN
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from sb3_mario.ddqn import DoubleDQN
from sb3_mario.files import check_model_zip
from sb3_mario.weights import load_weights

#: the algorithms that ``--algo`` may name, as in rl-zoo
ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"ddqn": DoubleDQN, "dqn": DQN, "qrdqn": QRDQN}
ALGORITHMS = tuple(ALGORITHM_CLASSES)


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """
    :param algo: ``"ddqn"``, ``"dqn"`` or ``"qrdqn"``
    :return: the algorithm class
    """
    if algo in ALGORITHM_CLASSES:
        return ALGORITHM_CLASSES[algo]
    raise ValueError(f"Unknown algorithm {algo!r}: choose one of {list(ALGORITHMS)}.")


def load_model(
    path: str | Path, algo: str = "ddqn", device: str = "auto"
) -> tuple[BaseAlgorithm | BasePolicy, dict[str, Any]]:
    """
    Load a model for evaluation, with the env pipeline it was trained with when that is known.

    :param path: an SB3 ``.zip``, weights exported by :func:`export_weights` (``.pt``, with its ``.json``), or an
        rl-zoo run folder (its ``best_model.zip`` if it has one, else its final model)
    :param algo: ``"ddqn"``, ``"dqn"`` or ``"qrdqn"`` (for a ``.zip``)
    :param device: torch device
    :return: the model (a policy for exported weights; both have ``predict``) and a dict with
        ``wrapper_kwargs``, ``frame_stack`` and ``env_id`` when known (the export's json, or rl-zoo's config.yml and
        args.yml next to a zip)
    """
    path = run_model(Path(path)) if Path(path).is_dir() else Path(path)
    if path.suffix in (".pt", ".json"):
        return load_weights(path, device=device)
    check_model_zip(path, algo)
    model = algorithm_class(algo).load(path, device=device)
    return model, zoo_pipeline(path)


def run_model(run: Path) -> Path:
    """
    :param run: an rl-zoo run folder (``logs/<algo>/<env>_<n>``)
    :return: its ``best_model.zip`` (the best evaluation), else its final ``<env>.zip``
    """
    final = sorted(path for path in run.glob("*.zip") if not path.name.startswith(("rl_model_", "best_model")))
    for candidate in (run / "best_model.zip", *final):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"No model in {run}: expected best_model.zip or <env>.zip (rl-zoo's run folder).")


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
        env_id = zoo_arguments(config.parent).get("env")
        if env_id:
            pipeline["env_id"] = str(env_id)
        return pipeline
    return {}


def zoo_arguments(folder: Path) -> dict[str, Any]:
    """
    :param folder: the folder in which rl-zoo saves a run's settings (``logs/<algo>/<env>_<run>/<env>``)
    :return: the run's command-line arguments from its ``args.yml`` (``env``, ``seed``, ...), else ``{}``
    """
    args = folder / "args.yml"
    if not args.is_file():
        return {}
    with open(args) as f:
        return dict(yaml.load(f, Loader=yaml.UnsafeLoader))  # written by rl-zoo itself, as enjoy reads it
