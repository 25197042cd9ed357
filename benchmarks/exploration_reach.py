"""How often exploration around a trained agent gets past the place where the agent dies: epsilon-greedy against
ez-greedy (:mod:`sb3_mario.ddqn.exploration`) at the same epsilon, episode by episode in one process.

    python benchmarks/exploration_reach.py <run>/best_model.pt --episodes 200 --epsilon 0.05 0.1 --mu 2

A training episode is the greedy policy plus exploration. This plays the agent's greedy actions with each kind of
exploration on the env it was trained on (its no-op starts and sticky actions), episode i of every kind seeded
with i, and counts the episodes that get farther than the greedy agent's farthest x on seeds 0..9 (``--past``
sets another x): the chance that a training episode shows the learner the way on.
"""

import argparse
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from sb3_mario.ddqn.exploration import ExtendedExploration
from sb3_mario.evaluation import evaluate_mario, evaluate_pipeline, make_pipeline_env, pipeline_env_id
from sb3_mario.loading import load_model


class Exploring:
    """
    A trained agent's greedy actions with exploration, behind SB3's ``predict`` (for :func:`evaluate_mario`).

    :param model: the agent
    :param n_actions: size of its action set
    :param epsilon: the exploration rate
    :param mu: ez-greedy's zeta exponent, or ``None`` for epsilon-greedy
    """

    def __init__(self, model: Any, n_actions: int, epsilon: float, mu: float | None) -> None:
        self.model, self.n_actions, self.epsilon = model, n_actions, epsilon
        self.exploration = ExtendedExploration(1, n_actions, mu) if mu is not None else None

    def predict(self, observation: np.ndarray, deterministic: bool = True) -> tuple[np.ndarray, None]:
        greedy = self.model.predict(observation, deterministic=True)[0]
        if self.exploration is not None:
            return self.exploration.choose(np.array([0]), self.epsilon, greedy), None
        explore = np.random.rand() < self.epsilon
        return (np.array([np.random.randint(self.n_actions)]) if explore else greedy), None


def play(model: Any, env: VecEnv, seed: int, epsilon: float, mu: float | None) -> tuple[int, bool]:
    """
    :param model: the agent
    :param env: a Mario VecEnv with one env
    :param seed: the episode's seed (the env's and NumPy's)
    :param epsilon: the exploration rate
    :param mu: ez-greedy's zeta exponent, or ``None`` for epsilon-greedy
    :return: the episode's farthest x and whether it reached the flag
    """
    np.random.seed(seed)
    exploring = Exploring(model, int(env.action_space.n), epsilon, mu)  # type: ignore[attr-defined]
    result = evaluate_mario(exploring, env, n_episodes=1, first_seed=seed)  # type: ignore[arg-type]
    return result.max_x_pos[0], result.clears[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="SB3 .zip or weights-only .pt")
    parser.add_argument("--env", default=None, help="default: the model's env id")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--epsilon", type=float, nargs="+", default=[0.05, 0.1])
    parser.add_argument("--mu", type=float, default=2.0, help="ez-greedy's zeta exponent")
    parser.add_argument("--past", type=int, default=None, help="x to get past (default: the greedy agent's farthest)")
    args = parser.parse_args()

    model, pipeline = load_model(args.model, device="cpu")
    env_id = pipeline_env_id(pipeline, args.env)
    past = args.past
    if past is None:
        past = max(evaluate_pipeline(model, pipeline, env_id, n_episodes=10).max_x_pos)
    env = make_pipeline_env(pipeline, env_id)
    kinds = [(eps, mu) for eps in args.epsilon for mu in (None, args.mu)]
    results: dict[tuple[float, float | None], list[tuple[int, bool]]] = {kind: [] for kind in kinds}
    for seed in range(args.episodes):  # interleaved: every kind plays episode i before any plays i + 1
        for eps, mu in kinds:
            results[(eps, mu)].append(play(model, env, seed, eps, mu))
    env.close()
    whence = "the greedy agent's farthest on seeds 0..9" if args.past is None else "--past"
    print(f"{env_id}, {args.episodes} episodes per row, past x = {past} ({whence})")
    print("| exploration | epsilon | episodes past x | mean max x | clears |")
    print("| --- | --- | --- | --- | --- |")
    for (eps, mu), episodes in results.items():
        xs = np.array([x for x, _ in episodes])
        name = "epsilon-greedy" if mu is None else f"ez-greedy, mu {mu:g}"
        print(f"| {name} | {eps:g} | {int((xs > past).sum())} ({(xs > past).mean():.1%}) | {xs.mean():,.0f} | "
              f"{sum(flag for _, flag in episodes)} |")  # fmt: skip


if __name__ == "__main__":
    main()
