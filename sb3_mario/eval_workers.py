"""Mario evaluations in worker processes: a pool that plays exported weights over seeded episodes while training
goes on.

:class:`EvalWorkers` takes a checkpoint (weights written by :func:`sb3_mario.weights.export_weights`) and splits
its episodes over its processes; each process builds the env pipeline once, loads the weights (no code is
unpickled) and plays greedy episodes with :func:`sb3_mario.evaluation.evaluate_mario`'s protocol, seed by seed. The
trainer only writes the weights and later collects the results: it never waits for an episode. The workers run at a
low scheduling priority and leave Ctrl-C and a SIGTERM to the trainer's process group to the trainer (which saves
the run); they are daemons, ended with the trainer.
"""

import os
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.pool import AsyncResult
from typing import Any

from sb3_mario.evaluation import MarioEvalResult
from sb3_mario.worker_signals import shield_worker

#: how much nicer (lower priority) than the trainer the evaluation workers run: below the env workers too
EVAL_NICENESS = 10

_envs: dict[tuple, Any] = {}  # per worker process: the env of each pipeline, built once


def _start_worker() -> None:
    shield_worker()
    try:
        os.nice(EVAL_NICENESS)
    except OSError:
        pass
    import torch as th

    th.set_num_threads(1)


def evaluate_weights(
    path: str, env_id: str, pipeline: dict[str, Any], first_seed: int, n_episodes: int
) -> MarioEvalResult:
    """
    Play ``n_episodes`` greedy episodes of the exported weights at ``path``, seeds ``first_seed`` on (in a worker).

    :param path: the ``.pt`` written by :func:`~sb3_mario.weights.export_weights`
    :param env_id: gym-super-mario-bros id
    :param pipeline: ``wrapper_kwargs`` and ``frame_stack`` of the eval env
    :param first_seed: seed of the first episode
    :param n_episodes: episodes to play
    :return: their outcomes
    """
    from sb3_mario.env import make_mario_env
    from sb3_mario.evaluation import evaluate_mario
    from sb3_mario.weights import load_weights

    key = (env_id, repr(sorted(pipeline["wrapper_kwargs"].items())), pipeline["frame_stack"])
    if key not in _envs:
        _envs[key] = make_mario_env(env_id, n_envs=1, frame_stack=pipeline["frame_stack"],
                                    wrapper_kwargs=pipeline["wrapper_kwargs"])  # fmt: skip
    policy, _ = load_weights(path)
    return evaluate_mario(policy, _envs[key], n_episodes=n_episodes, first_seed=first_seed)


@dataclass
class PendingEvaluation:
    """The episodes of one checkpoint, in flight in the workers."""

    num_timesteps: int
    weights: str
    futures: list[AsyncResult] = field(default_factory=list)

    def done(self) -> bool:
        """:return: whether every part has finished"""
        return all(future.ready() for future in self.futures)

    def result(self) -> MarioEvalResult:
        """:return: the outcomes of all its episodes, in seed order (raises a worker's error)"""
        merged = MarioEvalResult()
        for future in self.futures:
            part: MarioEvalResult = future.get()
            merged.clears += part.clears
            merged.max_x_pos += part.max_x_pos
            merged.returns += part.returns
            merged.lengths += part.lengths
        return merged


class EvalWorkers:
    """
    A pool of ``n_workers`` processes that evaluate checkpoints of one env pipeline (see the module).

    :param n_workers: processes (each plays its share of a checkpoint's episodes)
    :param env_id: gym-super-mario-bros id
    :param pipeline: ``wrapper_kwargs`` and ``frame_stack`` of the eval env
    """

    def __init__(self, n_workers: int, env_id: str, pipeline: dict[str, Any]) -> None:
        if n_workers < 1:
            raise ValueError(f"EvalWorkers needs n_workers >= 1, got {n_workers}.")
        self.n_workers, self.env_id, self.pipeline = n_workers, env_id, pipeline
        self.pool = get_context("spawn").Pool(n_workers, initializer=_start_worker)
        self.pending: list[PendingEvaluation] = []

    def submit(self, weights: str, num_timesteps: int, first_seed: int, n_episodes: int) -> None:
        """
        Start evaluating a checkpoint: its episodes split over the workers.

        :param weights: the exported ``.pt`` of the checkpoint
        :param num_timesteps: the checkpoint's step, to report it with
        :param first_seed: seed of its first episode
        :param n_episodes: how many episodes
        """
        pending = PendingEvaluation(num_timesteps, weights)
        share = -(-n_episodes // self.n_workers)
        for start in range(0, n_episodes, share):
            count = min(share, n_episodes - start)
            job = (weights, self.env_id, self.pipeline, first_seed + start, count)
            future = self.pool.apply_async(evaluate_weights, job)
            pending.futures.append(future)
        self.pending.append(pending)

    def finished(self, wait: bool = False) -> list[tuple[PendingEvaluation, MarioEvalResult]]:
        """
        :param wait: wait for every pending checkpoint
        :return: the checkpoints finished since the last call, oldest first, with their outcomes
        """
        done = []
        while self.pending and (wait or self.pending[0].done()):
            pending = self.pending.pop(0)
            done.append((pending, pending.result()))
        return done

    def close(self) -> None:
        """Stop the workers (checkpoints still in flight are dropped)."""
        self.pool.terminate()
        self.pool.join()
        self.pending = []
