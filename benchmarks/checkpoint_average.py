"""Average the weights of checkpoints of one run, and evaluate the average beside each checkpoint.

    python benchmarks/checkpoint_average.py <run>/exported/rl_model_1000000_steps.pt \\
        <run>/exported/rl_model_1100000_steps.pt --episodes 20 --processes 2
    python benchmarks/checkpoint_average.py <run>/exported/rl_model_*_steps.pt --window 3

Every network (each checkpoint, and the element-wise mean of their weights) plays as
``python -m sb3_mario.evaluate`` plays (greedy, seeds 0..N-1, random 0-30 no-op frames, ``--sticky-actions`` as
there) on the checkpoints' stage. A lever against a clear rate that swings between neighbouring checkpoints, if
the mean plays better than its members.

Means over a short stretch of training need checkpoints closer together than rl-zoo's: :class:`WeightSnapshots`
writes the online weights every 10,000 agent steps, weights-only, from an rl-zoo yml or the command line::

    python -m sb3_mario.train --algo ddqn --env SuperMarioBros-1-1-v0 \\
        --hyperparams "callback:[{'benchmarks.checkpoint_average.WeightSnapshots':dict(save_path='/tmp/snapshots')}]"
    python benchmarks/checkpoint_average.py /tmp/snapshots/*.pt --window 10 --every 100000 --save /tmp/means

``--save`` writes the means (each named and dated by its newest member) instead of playing them, for
``python -m sb3_mario.evaluate`` or ``scripts/learning_curve.py`` on another machine.
"""

import argparse
import json
import multiprocessing
import os
from pathlib import Path

import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from sb3_mario.callbacks import training_pipeline
from sb3_mario.evaluation import evaluate_pipeline
from sb3_mario.weights import export_weights, load_weights, write_weights


class WeightSnapshots(BaseCallback):
    """
    Write the online Q-network every ``every`` agent steps as weights-only ``rl_model_<steps>_steps.pt`` + ``.json``
    (:func:`~sb3_mario.weights.export_weights`, with the training env's pipeline), for averages over short stretches.

    :param save_path: the folder to write into
    :param every: agent steps between two snapshots
    :param verbose: 1 prints each file written
    """

    def __init__(self, save_path: str, every: int = 10_000, verbose: int = 0) -> None:
        super().__init__(verbose=verbose)
        if every < 1:
            raise ValueError(f"every must be >= 1 agent step, got {every}.")
        self.save_path = Path(save_path)
        self.every = every
        self._next = every
        self._pipeline: dict = {}

    def _init_callback(self) -> None:
        self.save_path.mkdir(parents=True, exist_ok=True)
        env_id, wrapper_kwargs, frame_stack = training_pipeline(self.training_env)
        self._pipeline = dict(env_id=env_id, wrapper_kwargs=wrapper_kwargs, frame_stack=frame_stack)
        self._next = (self.num_timesteps // self.every + 1) * self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            stem = self.save_path / f"rl_model_{self.num_timesteps}_steps"
            pt, _ = export_weights(self.model, stem, **self._pipeline)
            self._next = (self.num_timesteps // self.every + 1) * self.every
            if self.verbose >= 1:
                print(f"Saved {pt}")
        return True


def mean_weights(paths: list[str]) -> tuple[th.nn.Module, dict]:
    """
    :param paths: weights files written by :func:`~sb3_mario.weights.export_weights`, of one network shape
    :return: the policy of the first holding the element-wise mean of all of their weights, and its config
    """
    members = [load_weights(path, device="cpu") for path in paths]
    policy, config = members[0]
    state = {
        key: th.stack([member.state_dict()[key].float() for member, _ in members]).mean(dim=0)
        for key in policy.state_dict()
    }
    policy.load_state_dict(state)
    return policy, config


def save_mean(paths: list[str], out: Path) -> Path:
    """
    Write the mean of ``paths`` (:func:`mean_weights`) as the export format, named and dated by the newest member.

    :param paths: the members, oldest first
    :param out: the folder to write into
    :return: the ``.pt`` written
    """
    policy, _ = mean_weights(paths)
    newest = Path(paths[-1])
    config = json.loads(newest.with_suffix(".json").read_text())
    config["averaged"] = [Path(path).stem for path in paths]
    state = {k: v.detach().cpu().contiguous() for k, v in policy.q_net.state_dict().items()}
    files = write_weights(state, {**config, "dtype": "float32", "float16_tensors": []}, out / newest.name)
    for file in files:
        os.utime(file, (newest.stat().st_mtime, newest.stat().st_mtime))
    return files[0]


def evaluate(job: tuple[list[str], int, float | None]) -> str:
    """
    :param job: the weights files to average (one: that checkpoint alone), the number of episodes and the
        sticky-action probability (``None``: as trained)
    :return: one line: what was played and its summary
    """
    paths, episodes, sticky = job
    policy, config = mean_weights(paths)
    result = evaluate_pipeline(policy, config, config["env_id"], n_episodes=episodes, sticky_actions=sticky)
    name = " + ".join(Path(path).stem for path in paths) if len(paths) > 1 else Path(paths[0]).stem
    return f"{'mean of ' if len(paths) > 1 else ''}{name}: {result.summary()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", nargs="+", help="weights-only checkpoints (.pt) of one run")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--processes", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--sticky-actions", type=float, default=None, metavar="P", help="default: as trained")
    parser.add_argument("--window", type=int, default=None,
                        help="average every K consecutive checkpoints (by steps) instead of all of them")  # fmt: skip
    parser.add_argument("--every", type=int, default=None, metavar="STEPS",
                        help="only the means whose newest checkpoint's steps are a multiple of STEPS")  # fmt: skip
    parser.add_argument("--save", type=Path, default=None, metavar="DIR",
                        help="write the means into DIR instead of playing anything")  # fmt: skip
    args = parser.parse_args()
    configs = {path: load_weights(path, device="cpu")[1] for path in args.weights}
    envs = {config["env_id"] for config in configs.values()}
    if len(envs) != 1:
        raise ValueError(f"The checkpoints come from different stages ({sorted(envs)}): average one run's.")
    paths = sorted(args.weights, key=lambda path: configs[path]["num_timesteps"])
    k = args.window or len(paths)
    if not 1 < k <= len(paths):
        raise ValueError(f"--window {k}: need 2 <= K <= the {len(paths)} checkpoints given.")
    windows = [paths[end - k : end] for end in range(k, len(paths) + 1)]
    if args.every is not None:
        windows = [window for window in windows if configs[window[-1]]["num_timesteps"] % args.every == 0]
    if args.save is not None:
        args.save.mkdir(parents=True, exist_ok=True)
        for window in windows:
            print(f"wrote {save_mean(window, args.save)}: the mean of {len(window)}, {Path(window[0]).stem} on")
        return
    jobs = [([path], args.episodes, args.sticky_actions) for path in paths]
    jobs += [(window, args.episodes, args.sticky_actions) for window in windows]
    with multiprocessing.get_context("spawn").Pool(min(args.processes, len(jobs))) as pool:
        for line in pool.imap(evaluate, jobs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
