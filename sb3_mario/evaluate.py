"""Evaluate an agent on Super Mario Bros.: level-clear rate, farthest x position and return.

Command line::

    python -m sb3_mario.evaluate logs/ddqn/SuperMarioBros-1-1-v0_1/SuperMarioBros-1-1-v0.zip -n 20

Each episode i (i = 0..n-1) is seeded with ``i`` (``--first-seed s``: ``s + i``, episodes no training run's
evaluation plays when ``s`` is past them) and starts after a random 0..``--noop-max`` no-op frames; actions are
greedy unless ``--stochastic``. The last lines give the clear rate, mean farthest x position and mean
return, and where the episodes that did not clear stopped (16-pixel buckets, the most frequent first).
"""

import argparse
from pathlib import Path

from sb3_mario.evaluation import MarioEvalResult, evaluate_mario, make_pipeline_env, pipeline_env_id
from sb3_mario.loading import ALGORITHMS, load_model, run_model


def main(argv: list[str] | None = None) -> MarioEvalResult:
    """
    Command-line entry point; prints per-episode lines and a summary.

    :param argv: arguments (default: ``sys.argv[1:]``)
    :return: the evaluation result
    """
    parser = argparse.ArgumentParser(prog="python -m sb3_mario.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a saved model: SB3 .zip, sb3-mario's weights-only .pt (with its .json), or an "
                        "rl-zoo run folder (its best_model.zip, else its final model)")  # fmt: skip
    parser.add_argument("--algo", default="ddqn", choices=sorted(ALGORITHMS), help="algorithm of a .zip model")
    parser.add_argument("--env", default=None, help="gym-super-mario-bros env id (default: the model's, else 1-1)")
    parser.add_argument("-n", "--n-episodes", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first episode (episode i: this + i)")
    parser.add_argument("--noop-max", type=int, default=30, help="random no-op frames at the start of each episode")
    parser.add_argument("--actions", default=None, help="action set (default: the model's, else right_only)")
    parser.add_argument("--frame-skip", type=int, default=None)
    parser.add_argument("--frame-stack", type=int, default=None)
    parser.add_argument("--sticky-actions", type=float, default=None, metavar="P",
                        help="repeat the previous NES frame's action with probability P (default: as trained, "
                        "else 0; ALE v5 uses 0.25)")  # fmt: skip
    parser.add_argument("--stochastic", action="store_true", help="sample actions instead of greedy ones")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    model, pipeline = load_model(args.model, algo=args.algo, device=args.device)
    if Path(args.model).is_dir():
        print(f"{run_model(Path(args.model))}")
    env_id = pipeline_env_id(pipeline, args.env)
    env = make_pipeline_env(pipeline, env_id, args.noop_max, args.frame_stack, actions=args.actions,
                            frame_skip=args.frame_skip, sticky_actions=args.sticky_actions)  # fmt: skip
    actions = "stochastic" if args.stochastic else "greedy"
    seeds = f"{args.first_seed}..{args.first_seed + args.n_episodes - 1}"
    print(f"{env_id}: {args.n_episodes} episodes, seeds {seeds}, 0-{args.noop_max} no-op frames, "
          f"sticky actions {env.get_attr('sticky_actions')[0]}, {actions}")  # fmt: skip
    result = MarioEvalResult()
    try:
        for episode in range(args.n_episodes):
            seed = args.first_seed + episode
            one = evaluate_mario(model, env, n_episodes=1, deterministic=not args.stochastic, first_seed=seed)
            print(
                f"episode {episode:3d} seed {seed:3d}: clear={one.clears[0]!s:5} max_x_pos={one.max_x_pos[0]:5d} "
                f"return={one.returns[0]:8.1f} steps={one.lengths[0]}"
            )
            result.clears += one.clears
            result.max_x_pos += one.max_x_pos
            result.returns += one.returns
            result.lengths += one.lengths
    finally:
        env.close()
    print(result.summary())
    stops = result.stops()
    if stops:
        where = ", ".join(f"x {x}-{x + 15} ({n})" for x, n in stops[:5])
        print(f"not cleared: {len(result.clears) - sum(result.clears)} episodes, stopped at {where}")
    return result


if __name__ == "__main__":
    main()
