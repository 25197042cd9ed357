"""Interrupt and resume: Ctrl-C or SIGTERM saves the run; resuming continues it where it stopped.

A run folder holds ``model.zip`` (weights, optimizer, ``num_timesteps``, exploration and learning-rate
schedules), ``replay_buffer.pkl`` and ``interrupted.json`` (the run's target ``total_timesteps``). Every file is
written atomically.

    from sb3_mario.resume import learn_resumable, resume_learning

    learn_resumable(model, 2_000_000, "runs/mario")      # Ctrl-C / kill: saved to runs/mario, then re-raised
    model = resume_learning("runs/mario", env)           # same num_timesteps, buffer and schedule position

rl-zoo runs get the same through the start-up hook (see :mod:`sb3_mario.zoo`): an interrupted
``rl_zoo3.train`` also saves its replay buffer, and ``-i <run>/<env>.zip`` resumes it.
"""

import contextlib
import json
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import GymEnv

from sb3_mario.ddqn import DoubleDQN
from sb3_mario.files import atomic_write

STATE_FILE = "interrupted.json"
MODEL_FILE = "model.zip"
BUFFER_FILE = "replay_buffer.pkl"


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """
    Inside the block, SIGTERM raises ``KeyboardInterrupt`` like Ctrl-C does, so that the same clean-up saves
    the run. Outside the main thread, or when SIGTERM already has a handler, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_state(folder: str | Path, model: BaseAlgorithm, total_timesteps: int) -> None:
    """
    Record where an interrupted run stood.

    :param folder: the run folder
    :param model: the model being trained
    :param total_timesteps: the run's target number of steps (its ``learn`` argument, counted from 0)
    """
    state = {"num_timesteps": model.num_timesteps, "total_timesteps": int(total_timesteps)}
    with atomic_write(Path(folder) / STATE_FILE) as f:
        f.write(json.dumps(state, indent=2).encode())


def read_state(folder: str | Path) -> dict[str, int] | None:
    """
    :param folder: a run folder
    :return: the state written by :func:`write_state`, or None if the run was not interrupted
    """
    path = Path(folder) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def save_run(folder: str | Path, model: BaseAlgorithm, total_timesteps: int) -> None:
    """
    Save model, replay buffer and run state to ``folder``, each atomically.

    :param folder: the run folder
    :param model: the model being trained
    :param total_timesteps: the run's target number of steps
    """
    folder = Path(folder)
    with atomic_write(folder / MODEL_FILE) as f:
        model.save(f)  # type: ignore[arg-type]
    if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
        with atomic_write(folder / BUFFER_FILE) as f:
            model.save_replay_buffer(f)  # type: ignore[arg-type]
    write_state(folder, model, total_timesteps)


def learn_resumable(
    model: BaseAlgorithm, total_timesteps: int, folder: str | Path, **learn_kwargs: Any
) -> BaseAlgorithm:
    """
    ``model.learn(total_timesteps)``; on Ctrl-C or SIGTERM, save the run to ``folder`` and re-raise.

    :param model: the model to train
    :param total_timesteps: the run's target number of steps
    :param folder: where an interrupted run is saved
    :param learn_kwargs: more arguments of ``learn`` (callback, log_interval, ...)
    :return: the trained model
    """
    return _learn_saving_on_interrupt(model, total_timesteps, folder, total_timesteps, **learn_kwargs)


def _learn_saving_on_interrupt(
    model: BaseAlgorithm, steps: int, folder: str | Path, target: int, **learn_kwargs: Any
) -> BaseAlgorithm:
    """``model.learn(steps)``; on Ctrl-C or SIGTERM, save the run (its target: ``target`` steps) and re-raise."""
    with sigterm_as_interrupt():
        try:
            return model.learn(steps, **learn_kwargs)
        except KeyboardInterrupt:
            save_run(folder, model, target)
            print(f"Interrupted at num_timesteps={model.num_timesteps}: run saved to {folder}; resume it with "
                  f"sb3_mario.resume.resume_learning({str(folder)!r}, env)")  # fmt: skip
            raise


def resume_learning(
    folder: str | Path, env: GymEnv, algorithm: type[BaseAlgorithm] | None = None, **learn_kwargs: Any
) -> BaseAlgorithm:
    """
    Load an interrupted run and train the steps it had left, continuing its step counter and schedules.
    It can be interrupted and resumed again.

    :param folder: the run folder written by :func:`learn_resumable`
    :param env: the environment to continue on (built like the original one)
    :param algorithm: the algorithm class (default: :class:`~sb3_mario.DoubleDQN`)
    :param learn_kwargs: more arguments of ``learn``
    :return: the trained model
    """
    state = read_state(folder)
    if state is None:
        raise FileNotFoundError(f"No interrupted run in {folder} (no {STATE_FILE}); start a new run instead.")
    algorithm = algorithm or DoubleDQN
    model = algorithm.load(Path(folder) / MODEL_FILE, env=env)
    if isinstance(model, OffPolicyAlgorithm) and (Path(folder) / BUFFER_FILE).is_file():
        model.load_replay_buffer(Path(folder) / BUFFER_FILE)
    remaining = max(0, state["total_timesteps"] - model.num_timesteps)
    # reset_num_timesteps=False: SB3 then targets num_timesteps + remaining = the original total
    _learn_saving_on_interrupt(model, remaining, folder, state["total_timesteps"], reset_num_timesteps=False,
                               **learn_kwargs)  # fmt: skip
    (Path(folder) / STATE_FILE).unlink()
    return model
