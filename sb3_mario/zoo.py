"""rl-baselines3-zoo integration: ``--algo ddqn``, its Optuna sampler, Mario env ids and default configs.

rl_zoo3 has no plugin mechanism, so :func:`patch` edits three of its modules right after they load:

- ``rl_zoo3.utils``: adds ``ALGOS["ddqn"] = DoubleDQN`` (before ``train``/``enjoy`` build ``--algo``
  choices) and imports gym-super-mario-bros so the Mario ids are registered;
- ``rl_zoo3.hyperparams_opt``: adds the ``ddqn`` sampler and converter for ``-optimize``;
- ``rl_zoo3.exp_manager``: when no ``--conf-file`` is given, hyperparameters come from this package's
  ``zoo_configs/<algo>.yml`` for ``ddqn`` and for any env id listed there (a user's ``--conf-file``
  always wins); ``sb3_mario`` is importable by name inside yml ``policy_kwargs`` strings.

The start-up hook (``sb3_mario_hook.pth``) calls :func:`patch` for ``python -m rl_zoo3.*``;
``python -m sb3_mario.train`` calls :func:`patch_all` explicitly.
"""

import functools
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ALGO = "ddqn"


def config_dir() -> Path:
    """
    :return: the folder of the package's rl-zoo configs (inside the installed package, or the repository's
        top-level ``zoo_configs/`` for an editable install)
    """
    packaged = Path(__file__).parent / "zoo_configs"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "zoo_configs"


@functools.cache
def _config_keys(path: Path) -> frozenset[str]:
    with open(path) as f:
        return frozenset(yaml.safe_load(f) or {})


def default_config(algo: str, env_id: str) -> str | None:
    """
    The config rl-zoo should read when the user gave no ``--conf-file``.

    :param algo: the ``--algo`` value
    :param env_id: the ``--env`` value
    :return: the package's ``zoo_configs/<algo>.yml`` for ``ddqn`` or when it lists ``env_id``;
        ``None`` to keep rl-zoo's own default
    """
    path = config_dir() / f"{algo}.yml"
    if path.is_file() and (algo == ALGO or env_id in _config_keys(path)):
        return str(path)
    return None


def sample_ddqn_params(trial: Any, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """
    Optuna sampler for DoubleDQN. Unlike rl-zoo's DQN sampler it keeps the yml's ``policy_kwargs`` (so
    a CNN policy keeps its features extractor) and also samples n-step returns.

    :param trial: the Optuna trial
    :param n_actions: number of actions (unused, part of rl-zoo's sampler signature)
    :param n_envs: number of envs (unused, part of rl-zoo's sampler signature)
    :param additional_args: rl-zoo's extra arguments (unused)
    :return: DoubleDQN keyword arguments
    """
    gamma = 1 - trial.suggest_float("one_minus_gamma", 0.0001, 0.1, log=True)
    learning_rate = trial.suggest_float("learning_rate", 1e-5, 2e-3, log=True)
    batch_size = 2 ** trial.suggest_int("batch_size_pow", 5, 8)
    train_freq = trial.suggest_int("train_freq", 1, 8)
    gradient_steps = max(1, train_freq // trial.suggest_int("subsample_steps", 1, min(train_freq, 4)))
    target_update_interval = trial.suggest_int("target_update_interval", 100, 20000, log=True)
    exploration_fraction = trial.suggest_float("exploration_fraction", 0.01, 0.5)
    exploration_final_eps = trial.suggest_float("exploration_final_eps", 0.0, 0.1)
    n_steps = trial.suggest_int("n_steps", 1, 5)
    trial.set_user_attr("gamma", gamma)
    trial.set_user_attr("batch_size", batch_size)
    return {
        "gamma": gamma,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "train_freq": train_freq,
        "gradient_steps": gradient_steps,
        "target_update_interval": target_update_interval,
        "exploration_fraction": exploration_fraction,
        "exploration_final_eps": exploration_final_eps,
        "n_steps": n_steps,
    }


def convert_ddqn_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """
    Turn the raw Optuna parameters of a finished trial (``trial.params``) into DoubleDQN keyword arguments,
    for rl-zoo's report and ``--trial-id`` loading.

    :param sampled_params: ``trial.params`` of a trial sampled by :func:`sample_ddqn_params`
    :return: DoubleDQN keyword arguments
    """
    params = dict(sampled_params)
    params["gamma"] = 1 - params.pop("one_minus_gamma")
    params["batch_size"] = 2 ** params.pop("batch_size_pow")
    params["gradient_steps"] = max(1, params["train_freq"] // params.pop("subsample_steps"))
    return params


def _patch_utils(module: ModuleType) -> None:
    import gym_super_mario_bros  # noqa: F401  (registers the Mario ids before rl-zoo checks --env)

    from sb3_mario.ddqn import DoubleDQN

    module.ALGOS.setdefault(ALGO, DoubleDQN)


def _patch_hyperparams_opt(module: ModuleType) -> None:
    module.HYPERPARAMS_SAMPLER.setdefault(ALGO, sample_ddqn_params)
    module.HYPERPARAMS_CONVERTER.setdefault(ALGO, convert_ddqn_params)


def _patch_exp_manager(module: ModuleType) -> None:
    import sb3_mario

    # yml strings such as policy_kwargs are eval()-ed in this module's namespace
    module.__dict__.setdefault("sb3_mario", sb3_mario)
    manager = module.ExperimentManager
    original_init = manager.__init__

    @functools.wraps(original_init)
    def __init__(self: Any, args: Any, algo: str, env_id: str, *rest: Any, **kwargs: Any) -> None:
        if kwargs.get("config") is None:
            kwargs["config"] = default_config(algo, env_id)
        original_init(self, args, algo, env_id, *rest, **kwargs)

    manager.__init__ = __init__


PATCHES = {
    "rl_zoo3.utils": _patch_utils,
    "rl_zoo3.hyperparams_opt": _patch_hyperparams_opt,
    "rl_zoo3.exp_manager": _patch_exp_manager,
}


def patch(module: ModuleType) -> None:
    """
    Apply this package's patch to one freshly loaded rl_zoo3 module (once).

    :param module: ``rl_zoo3.utils``, ``rl_zoo3.hyperparams_opt`` or ``rl_zoo3.exp_manager``
    """
    if getattr(module, "_sb3_mario_patched", False):
        return
    PATCHES[module.__name__](module)
    module._sb3_mario_patched = True  # type: ignore[attr-defined]


def patch_all() -> None:
    """Import and patch every rl_zoo3 module this package extends (idempotent)."""
    for name in PATCHES:
        patch(importlib.import_module(name))
