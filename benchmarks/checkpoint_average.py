"""Average the weights of checkpoints of one run, and evaluate the average beside each checkpoint.

    python benchmarks/checkpoint_average.py <run>/exported/rl_model_1000000_steps.pt \\
        <run>/exported/rl_model_1100000_steps.pt --episodes 20 --processes 2
    python benchmarks/checkpoint_average.py <run>/exported/rl_model_*_steps.pt --window 3

Every network (each checkpoint, and the element-wise mean of their weights) plays as
``python -m sb3_mario.evaluate`` plays (greedy, seeds 0..N-1, random 0-30 no-op frames, ``--sticky-actions`` as
there) on the checkpoints' stage. A lever against a clear rate that swings between neighbouring checkpoints, if
the mean plays better than its members.
"""

import argparse
import multiprocessing
from pathlib import Path

import torch as th

from sb3_mario.evaluation import evaluate_pipeline
from sb3_mario.weights import load_weights


def evaluate(job: tuple[list[str], int, float | None]) -> str:
    """
    :param job: the weights files to average (one: that checkpoint alone), the number of episodes and the
        sticky-action probability (``None``: as trained)
    :return: one line: what was played and its summary
    """
    paths, episodes, sticky = job
    members = [load_weights(path, device="cpu") for path in paths]
    policy, config = members[0]
    state = {
        key: th.stack([member.state_dict()[key].float() for member, _ in members]).mean(dim=0)
        for key in policy.state_dict()
    }
    policy.load_state_dict(state)
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
    args = parser.parse_args()
    configs = {path: load_weights(path, device="cpu")[1] for path in args.weights}
    envs = {config["env_id"] for config in configs.values()}
    if len(envs) != 1:
        raise ValueError(f"The checkpoints come from different stages ({sorted(envs)}): average one run's.")
    paths = sorted(args.weights, key=lambda path: configs[path]["num_timesteps"])
    k = args.window or len(paths)
    if not 1 < k <= len(paths):
        raise ValueError(f"--window {k}: need 2 <= K <= the {len(paths)} checkpoints given.")
    jobs = [([path], args.episodes, args.sticky_actions) for path in paths]
    jobs += [(paths[end - k : end], args.episodes, args.sticky_actions) for end in range(k, len(paths) + 1)]
    with multiprocessing.get_context("spawn").Pool(min(args.processes, len(jobs))) as pool:
        for line in pool.imap(evaluate, jobs):
            print(line, flush=True)


if __name__ == "__main__":
    main()
