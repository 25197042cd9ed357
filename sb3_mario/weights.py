"""Weights-only export: a Q-network as plain tensors and a json config, loaded without unpickling any code."""

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.torch_layers import FlattenExtractor, NatureCNN
from stable_baselines3.dqn.policies import DQNPolicy

from sb3_mario.cnn import MarioCNN
from sb3_mario.files import atomic_write

WEIGHTS_FORMAT = "sb3-mario-q-network-1"


def _features_extractors() -> dict[str, type]:
    """:return: the features extractors that exported weights may use, by the name the json records"""
    return {"MarioCNN": MarioCNN, "NatureCNN": NatureCNN, "FlattenExtractor": FlattenExtractor}


def export_weights(
    model: BaseAlgorithm,
    path: str | Path,
    env_id: str | None = None,
    wrapper_kwargs: dict[str, Any] | None = None,
    frame_stack: int = 4,
    half: bool | Collection[str] = False,
) -> tuple[Path, Path]:
    """
    Export a DoubleDQN/DQN Q-network as plain tensors (``.pt``, loadable with ``torch.load(weights_only=True)``)
    and a small json config: a file format that runs no code when loaded, unlike SB3's pickled ``.zip``.

    :param model: a trained DoubleDQN or DQN with a ``MlpPolicy`` or ``CnnPolicy`` (NatureCNN or MarioCNN)
    :param path: the file stem; ``.pt`` and ``.json`` are written next to each other
    :param env_id: the env the model was trained on, for the record and for evaluation
    :param wrapper_kwargs: the MarioWrapper arguments it was trained with
    :param frame_stack: frames per observation it was trained with
    :param half: store the weights as float16 (half the file size; loaded back as float32): ``True`` for every
        tensor, or the names of the tensors to store so (e.g. :func:`largest_tensors`), the rest as float32. Check
        that the greedy actions stay those of the float32 weights on the episodes that matter before shipping such
        a file
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
    state = {k: v.detach().cpu().contiguous() for k, v in policy.q_net.state_dict().items()}  # type: ignore[union-attr]
    named = set(state) if half is True else set(half or ())
    unknown = sorted(named - set(state))
    if unknown:
        raise ValueError(f"half names tensors the Q-network does not have: {unknown}; it has {sorted(state)}.")
    halved = [k for k, v in state.items() if k in named and v.is_floating_point()]
    state = {k: v.half() if k in halved else v for k, v in state.items()}
    config["dtype"] = "float32" if not halved else "float16" if len(halved) == len(state) else "mixed"
    config["float16_tensors"] = halved
    return write_weights(state, config, path)


def write_weights(state: dict[str, th.Tensor], config: dict[str, Any], path: str | Path) -> tuple[Path, Path]:
    """
    Write a Q-network's tensors and their json config as the export format, each file atomically (a reader never
    sees half a file).

    :param state: the Q-network's ``state_dict``, on the CPU
    :param config: the json config (:func:`export_weights` writes its fields)
    :param path: the file stem; ``.pt`` and ``.json`` are written next to each other
    :return: the paths of the ``.pt`` and ``.json`` files
    """
    stem = Path(path).with_suffix("")
    pt, js = stem.with_suffix(".pt"), stem.with_suffix(".json")
    with atomic_write(pt) as f:
        th.save(state, f)
    with atomic_write(js) as f:
        f.write(json.dumps(config, indent=2).encode())
    return pt, js


def holds_float16_numbers(policy: BasePolicy) -> bool:
    """
    :param policy: a DQN policy
    :return: whether every floating-point weight of its Q-network is a float16 number, as
        ``DoubleDQN(float16_checkpoints=True)`` saves them: then ``export_weights(..., half=True)`` loses nothing
    """
    weights = policy.q_net.state_dict().values()  # type: ignore[union-attr]
    return all(th.equal(v, v.half().to(v.dtype)) for v in weights if v.is_floating_point())


def largest_tensors(policy: BasePolicy, share: float = 0.9) -> list[str]:
    """
    :param policy: a DQN policy
    :param share: the share of all weights that the returned tensors hold at least
    :return: the names of the fewest, largest tensors of its Q-network that hold ``share`` of its weights (for a
        CNN: the first linear layer): the ones worth storing as float16
    """
    sizes = sorted(((v.numel(), k) for k, v in policy.q_net.state_dict().items()), reverse=True)  # type: ignore[union-attr]
    total, names, held = sum(n for n, _ in sizes), [], 0
    for n, name in sizes:
        if held >= share * total:
            break
        names.append(name)
        held += n
    return names


def load_weights(path: str | Path, device: str = "cpu") -> tuple[BasePolicy, dict[str, Any]]:
    """
    Load weights written by :func:`export_weights` into a DQN policy, without unpickling any code.

    :param path: the ``.pt`` (or ``.json``) file
    :param device: torch device
    :return: the policy (``policy.predict(obs, deterministic=True)`` plays greedily) and the json config
    """
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
        # float16 tensors (export_weights(half=...)) come back as float32, the policy's dtype
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        policy.q_net.load_state_dict(state)
        policy.q_net_target.load_state_dict(state)
    except (OSError, KeyError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"{pt} / {js} are not weights exported by sb3_mario.weights.export_weights ({exc}). Export them again "
            "from the .zip with export_weights(DoubleDQN.load(zip), path)."
        ) from exc
    policy.set_training_mode(False)
    return policy.to(device), config
