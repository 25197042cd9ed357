"""rl-baselines3-zoo integration: ``--algo ddqn``, its Optuna sampler, Mario env ids and default configs.

rl_zoo3 has no plugin mechanism, so :func:`patch` edits three of its modules right after they load:

- ``rl_zoo3.utils``: adds ``ALGOS["ddqn"] = DoubleDQN`` (before ``train``/``enjoy`` build ``--algo``
  choices) and imports gym-super-mario-bros so the Mario ids are registered;
- ``rl_zoo3.hyperparams_opt``: adds the ``ddqn`` sampler and converter for ``-optimize``;
- ``rl_zoo3.exp_manager``: when no ``--conf-file`` is given, hyperparameters come from this package's
  ``zoo_configs/<algo>.yml`` for ``ddqn`` and for any env id listed there (a user's ``--conf-file``
  always wins); ``sb3_mario`` is importable by name inside yml ``policy_kwargs`` strings. On Mario ids the
  envs run in subprocesses unless ``--vec-env`` says otherwise, ``ddqn``'s hyperparameters are checked before
  any env or folder is made, a start that fails leaves no run folder behind, building the envs says how long it
  took, and (``ddqn``, ``dqn``) the evaluation runs in worker processes and keeps the run's pick by clear rate.

The start-up hook (``sb3_mario_hook.pth``) calls :func:`patch` for ``python -m rl_zoo3.*``;
``python -m sb3_mario.train`` calls :func:`patch_all` explicitly.
"""

import argparse
import functools
import importlib
import inspect
import os
import shutil
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_mario.resume import STATE_FILE, read_state, sigterm_as_interrupt, write_state

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


ZOO_DEFAULT_EVAL_FREQ = 25_000
#: on Mario ids: evaluate every this many steps, on this many episodes (unless the command line says otherwise)
MARIO_EVAL_FREQ = 100_000
MARIO_EVAL_EPISODES = 20
#: the algorithms whose Mario evaluation runs in worker processes (their greedy policy is a Q-network)
WORKER_EVAL_ALGOS = ("ddqn", "dqn")


@functools.cache
def _mario_ids() -> frozenset[str]:
    from sb3_mario.env import mario_env_ids

    return frozenset(mario_env_ids())


#: hyperparameters that rl-zoo itself consumes (the others go to the algorithm's constructor)
ZOO_KEYS = frozenset(
    {
        "n_envs",
        "n_timesteps",
        "normalize",
        "frame_stack",
        "env_wrapper",
        "vec_env_wrapper",
        "callback",
        "policy",
        "monitor_kwargs",
    }
)


def check_hyperparameter_names(algo: str, hyperparams: dict[str, Any], config: str) -> None:
    """
    Raise a ``ValueError`` naming unknown keys of a zoo config section, with the valid ones.

    :param algo: the ``--algo`` value
    :param hyperparams: the config section of the env
    :param config: the config file, for the message
    """
    from rl_zoo3.utils import ALGOS

    valid = set(inspect.signature(ALGOS[algo].__init__).parameters) - {"self", "env", "_init_setup_model"}
    unknown = sorted(set(hyperparams) - valid - ZOO_KEYS)
    if unknown:
        raise ValueError(
            f"Unknown hyperparameter(s) {unknown} for --algo {algo} in {config}. Fix or remove them; valid keys are "
            f"{sorted(valid | ZOO_KEYS)}."
        )


def check_hyperparameter_values(hyperparams: dict[str, Any], config: str) -> None:
    """
    Raise a ``ValueError`` naming the out-of-range values of a zoo config section (with ``--hyperparams``
    applied), before any env is built.

    :param hyperparams: the config section of the env
    :param config: the config file, for the message
    """
    from sb3_mario.ddqn.hyperparameters import HYPERPARAMETER_RULES, check_hyperparameters

    try:
        check_hyperparameters(**{k: v for k, v in hyperparams.items() if k in HYPERPARAMETER_RULES})
    except ValueError as exc:
        raise ValueError(f"{exc} Fix them in {config} or in --hyperparams.") from None


def option_given(argv: list[str], option: str) -> bool:
    """
    :param argv: the command line (``sys.argv[1:]``)
    :param option: one of rl-zoo's options with a value, e.g. ``"--vec-env"``
    :return: whether the command line gives it (abbreviations included, as argparse reads them)
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(option, dest="value", default=None)
    return parser.parse_known_args(argv)[0].value is not None


def eval_workers_for(cpus: int | None) -> int:
    """
    :param cpus: CPU cores of the machine
    :return: evaluation worker processes beside a training run that has a core per env: one for each 8 cores,
        1 to 4
    """
    return max(1, min(4, (cpus or 1) // 8))


def _patch_exp_manager(module: ModuleType) -> None:
    import sb3_mario

    # yml strings such as policy_kwargs are eval()-ed in this module's namespace
    module.__dict__.setdefault("sb3_mario", sb3_mario)
    manager = module.ExperimentManager
    original_init = manager.__init__
    original_read = manager.read_hyperparameters
    original_setup = manager.setup_experiment
    original_create_envs = manager.create_envs
    original_create_callbacks = manager.create_callbacks
    original_learn = manager.learn

    @functools.wraps(original_init)
    def __init__(self: Any, args: Any, algo: str, env_id: str, *rest: Any, **kwargs: Any) -> None:
        if kwargs.get("config") is None:
            kwargs["config"] = default_config(algo, env_id)
        original_init(self, args, algo, env_id, *rest, **kwargs)
        if env_id not in _mario_ids():
            return
        if self.eval_freq == ZOO_DEFAULT_EVAL_FREQ:
            # a Mario evaluation plays whole levels: rl-zoo's default would evaluate half-trained agents over and over
            self.eval_freq = MARIO_EVAL_FREQ
        if not option_given(sys.argv[1:], "--eval-episodes") and not self.optimize_hyperparameters:
            self.n_eval_episodes = MARIO_EVAL_EPISODES  # picks the best checkpoint: -optimize trials keep rl-zoo's 5
        if not option_given(sys.argv[1:], "--vec-env"):
            from stable_baselines3.common.vec_env import SubprocVecEnv

            # one emulator per process: several times faster than stepping them one after another here
            self.vec_env_class = SubprocVecEnv
            print("sb3-mario: Mario envs run in subprocesses, one per env (pass --vec-env dummy to keep them here)")

    @functools.wraps(original_read)
    def read_hyperparameters(self: Any) -> Any:
        hyperparams, saved = original_read(self)
        if self.algo == ALGO:
            check_hyperparameter_names(self.algo, hyperparams, self.config)
            check_hyperparameter_values(hyperparams, self.config)
        return hyperparams, saved

    @functools.wraps(original_setup)
    def setup_experiment(self: Any) -> Any:
        existed = os.path.exists(self.save_path)
        try:
            return original_setup(self)
        except BaseException:
            if not existed and os.path.isdir(self.save_path):
                shutil.rmtree(self.save_path, ignore_errors=True)  # a failed start leaves no run folder
            raise

    @functools.wraps(original_create_callbacks)
    def create_callbacks(self: Any) -> None:
        mario = self.env_name.gym_id in _mario_ids() and self.algo in WORKER_EVAL_ALGOS
        if not mario or self.eval_freq <= 0 or self.optimize_hyperparameters:
            return original_create_callbacks(self)
        # rl-zoo's own callbacks (progress bar, checkpoints), but the evaluation is sb3-mario's: in worker
        # processes, picked by clear rate
        eval_freq, self.eval_freq = self.eval_freq, 0
        try:
            original_create_callbacks(self)
        finally:
            self.eval_freq = eval_freq
        from sb3_mario.callbacks import MarioEvalCallback

        workers = eval_workers_for(os.cpu_count())
        self.callbacks.append(
            MarioEvalCallback(
                n_eval_episodes=self.n_eval_episodes,
                eval_freq=max(eval_freq // self.n_envs, 1),
                best_model_save_path=self.save_path,
                log_path=self.save_path,
                n_eval_workers=workers,
                verbose=self.verbose,
            )
        )
        print(f"sb3-mario: evaluating every {eval_freq} steps on {self.n_eval_episodes} episodes in {workers} worker "
              "process(es) while training goes on; the latest checkpoint within one standard error of the best "
              "clear rate is best_model.zip "
              "(--eval-freq, --eval-episodes choose)")  # fmt: skip

    @functools.wraps(original_create_envs)
    def create_envs(self: Any, n_envs: int, eval_env: bool = False, no_log: bool = False) -> Any:
        if self.env_name.gym_id not in _mario_ids():
            return original_create_envs(self, n_envs, eval_env=eval_env, no_log=no_log)
        where = "in subprocesses" if self.vec_env_class.__name__ == "SubprocVecEnv" else "in this process"
        what = "evaluation env" if eval_env else "training envs"
        print(f"sb3-mario: starting {n_envs} Mario {what} {where}...", flush=True)
        start = time.perf_counter()
        env = original_create_envs(self, n_envs, eval_env=eval_env, no_log=no_log)
        print(f"sb3-mario: {n_envs} Mario {what} ready in {time.perf_counter() - start:.1f} s", flush=True)
        return env

    @functools.wraps(original_learn)
    def learn(self: Any, model: Any) -> None:
        algorithm = type(model)
        model.__class__ = _resumable_class(algorithm, self)
        try:
            with sigterm_as_interrupt():
                original_learn(self, model)
        finally:
            model.__class__ = algorithm

    manager.__init__ = __init__
    manager.read_hyperparameters = read_hyperparameters
    manager.setup_experiment = setup_experiment
    manager.create_envs = create_envs
    manager.create_callbacks = create_callbacks
    manager.learn = learn


def _resumable_class(algorithm: "type[BaseAlgorithm]", manager: Any) -> type:
    """
    A subclass of the model's class whose ``learn`` makes rl-zoo runs resumable: an interrupted run (Ctrl-C,
    SIGTERM) also saves its replay buffer and writes ``interrupted.json``; ``-i`` on such a run trains the steps
    it had left (or ``-n`` more) without resetting the step counter, so the exploration and learning-rate
    schedules continue where they stopped. The model wears this class only while rl-zoo's ``learn`` runs
    (nothing of it is saved in the model files).
    """
    state = read_state(Path(manager.trained_agent).parent) if manager.continue_training else None
    explicit_n = getattr(manager.args, "n_timesteps", -1) > 0  # -n given on the command line

    def learn(self: Any, total_timesteps: int, **kwargs: Any) -> Any:
        target = total_timesteps
        if state is not None:
            kwargs["reset_num_timesteps"] = False
            target = self.num_timesteps + total_timesteps if explicit_n else state["total_timesteps"]
            total_timesteps = max(0, target - self.num_timesteps)
            print(f"Resuming an interrupted run at num_timesteps={self.num_timesteps}: {total_timesteps} steps left")
        try:
            return algorithm.learn(self, total_timesteps, **kwargs)
        except KeyboardInterrupt:
            manager.save_replay_buffer = True
            write_state(manager.save_path, self, target)
            print(f"Interrupted: the model, its replay buffer and {STATE_FILE} go to {manager.save_path}")
            raise

    return type(algorithm.__name__, (algorithm,), {"learn": learn, "__module__": algorithm.__module__})


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
