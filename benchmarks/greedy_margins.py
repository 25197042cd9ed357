"""How close a model's greedy choices are, and how far smaller copies of its weights move its Q-values.

    python benchmarks/greedy_margins.py <run>/exported/rl_model_1000000_steps.pt --episodes 20

The model plays the episodes of ``python -m sb3_mario.evaluate`` (greedy, seeds 0..N-1, random 0-30 no-op frames),
as trained and, for a model trained with sticky actions, also without them, as ``scripts/ship_model.py`` compares
them. At every step it reports the margin of the greedy action (the gap between the two highest Q-values), and for
each copy of the weights (float16 for every tensor, float16 for the largest tensors, which ``ship_model.py`` tries,
and 16-bit integers with one scale per row of the largest tensors) the largest change of a Q-value and the steps
where the copy's greedy action is another one. A copy surely plays the same game where it moves every Q-value by
less than half the margin, so the smallest margins say what precision a shipped file needs.

``--against <run>/exported/rl_model_900000_steps.pt`` compares another checkpoint of the same run the same way, and
how far its weights lie from the model's beside how far float16 rounding moves them: the scale of what training
changes between two checkpoints, against which a rounding of the weights at a checkpoint
(``DoubleDQN(float16_checkpoints=True)``) is measured.
"""

import argparse
from collections.abc import Callable
from copy import deepcopy

import numpy as np
import torch as th
from stable_baselines3.dqn.policies import DQNPolicy

from sb3_mario.evaluation import make_pipeline_env, trained_and_plain_sticky_actions
from sb3_mario.weights import largest_tensors, load_weights


def int16_rows(weight: th.Tensor) -> th.Tensor:
    """
    :param weight: a float32 matrix
    :return: the matrix rounded to 16-bit integers with one scale per row (the row's largest magnitude / 32767)
    """
    scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-30) / 32767
    return th.round(weight / scale) * scale


def copy_policy(policy: DQNPolicy, names: set[str], rounding: Callable[[th.Tensor], th.Tensor]) -> DQNPolicy:
    """
    :param policy: the float32 policy
    :param names: the tensors to round
    :param rounding: how to round one of them (the result is float32 again, as a loaded file's)
    :return: a copy of the policy whose named tensors are rounded
    """
    copy = deepcopy(policy)
    copy.q_net.load_state_dict({k: rounding(v) if k in names else v for k, v in policy.q_net.state_dict().items()})
    return copy


def weight_changes(policy: DQNPolicy, other: DQNPolicy) -> None:
    """
    Print how far the weights of ``other`` lie from those of ``policy``, and those of its float16 rounding: the
    share of weights that differ, and the median and largest difference among them.

    :param policy: the float32 policy
    :param other: another checkpoint of the same network
    """
    state, other_state = policy.q_net.state_dict(), other.q_net.state_dict()
    for name, change in (
        ("the other checkpoint", lambda k: other_state[k] - state[k]),
        ("float16 rounding", lambda k: state[k].half().float() - state[k]),
    ):
        values = th.cat([change(k).abs().flatten() for k in state if state[k].is_floating_point()])
        moved = values[values > 0]
        by = f", by a median {moved.median().item():.2g}, at most {moved.max().item():.2g}" if moved.numel() else ""
        print(f"weights to {name}: {moved.numel():,} of {values.numel():,} differ{by}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="weights-only .pt of a model (scripts/export_checkpoints.py)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes, seeded 0..N-1")
    parser.add_argument("--closest", type=int, default=5, help="how many of the smallest margins to list")
    parser.add_argument("--against", help="weights-only .pt of another checkpoint of the same run, to compare too")
    args = parser.parse_args()

    policy, config = load_weights(args.model)
    assert isinstance(policy, DQNPolicy)
    largest = set(largest_tensors(policy))
    every = set(policy.q_net.state_dict())
    copies = {
        "float16, every tensor": copy_policy(policy, every, lambda w: w.half().float()),
        "float16, the largest tensors": copy_policy(policy, largest, lambda w: w.half().float()),
        "int16 rows, the largest tensors": copy_policy(policy, largest, int16_rows),
    }
    if args.against is not None:
        other, other_config = load_weights(args.against)
        assert isinstance(other, DQNPolicy)
        copies[f"the checkpoint at {other_config['num_timesteps']:,} steps"] = other
        weight_changes(policy, other)
    for sticky in trained_and_plain_sticky_actions(config):
        env = make_pipeline_env(config, env_id=config["env_id"], sticky_actions=sticky)
        margins: list[tuple[float, int, int]] = []
        errors = dict.fromkeys(copies, 0.0)
        others: dict[str, list[tuple[int, int, float]]] = {name: [] for name in copies}
        for episode in range(args.episodes):
            env.seed(episode)
            obs = env.reset()
            for step in range(10**7):
                assert isinstance(obs, np.ndarray)
                with th.no_grad():
                    tensor = policy.obs_to_tensor(obs)[0]
                    q = policy.q_net(tensor)[0].numpy()
                    top = np.sort(q)[-2:]
                    margin = float(top[1] - top[0])
                    margins.append((margin, episode, step))
                    for name, copy in copies.items():
                        q_copy = copy.q_net(tensor)[0].numpy()
                        errors[name] = max(errors[name], float(np.abs(q_copy - q).max()))
                        if q_copy.argmax() != q.argmax():
                            others[name].append((episode, step, margin))
                obs, _, dones, _ = env.step(np.array([int(q.argmax())]))
                if dones[0]:
                    break
        env.close()
        values = np.array([m for m, _, _ in margins])
        q50, q01 = np.quantile(values, [0.5, 0.01])
        print(f"sticky actions {sticky}: {len(values)} steps; margin of the greedy action: median {q50:.3g}, "
              f"1% quantile {q01:.3g}, smallest {values.min():.3g}")  # fmt: skip
        closest = ", ".join(f"{m:.2g} (episode {e}, step {s})" for m, e, s in sorted(margins)[: args.closest])
        print(f"  smallest margins: {closest}")
        for name in copies:
            first = others[name][0] if others[name] else None
            where = "none" if first is None else f"first at episode {first[0]}, step {first[1]} (margin {first[2]:.2g})"
            print(f"  {name}: largest Q-value change {errors[name]:.2g}; other greedy actions at "
                  f"{len(others[name])} steps, {where}")  # fmt: skip


if __name__ == "__main__":
    main()
