"""Mario evaluation: level-clear rate, farthest x position and return over seeded episodes.

The command line is :mod:`sb3_mario.evaluate`; :class:`~sb3_mario.callbacks.MarioEvalCallback` evaluates
during training with the same function.
"""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.vec_env import VecEnv

from sb3_mario.env import make_mario_env


@dataclass
class MarioEvalResult:
    """Per-episode outcomes of :func:`evaluate_mario`."""

    clears: list[bool] = field(default_factory=list)
    max_x_pos: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    @property
    def clear_rate(self) -> float:
        """Fraction of episodes that reached the flag."""
        return float(np.mean(self.clears)) if self.clears else 0.0

    @property
    def mean_max_x_pos(self) -> float:
        """Mean over episodes of the farthest x position reached."""
        return float(np.mean(self.max_x_pos)) if self.max_x_pos else 0.0

    @property
    def mean_return(self) -> float:
        """Mean episode return (the wrapper's reward)."""
        return float(np.mean(self.returns)) if self.returns else 0.0

    def stops(self, bucket: int = 16) -> list[tuple[int, int]]:
        """
        Where the episodes that did not clear ended: their farthest x positions, grouped in buckets of ``bucket``
        pixels (16: one block of the level), most frequent first.

        :param bucket: width of a bucket in pixels
        :return: ``(bucket start x, episodes)`` pairs
        """
        starts = [x // bucket * bucket for x, clear in zip(self.max_x_pos, self.clears, strict=True) if not clear]
        values, counts = np.unique(starts, return_counts=True)
        order = sorted(zip(values.tolist(), counts.tolist(), strict=True), key=lambda pair: (-pair[1], pair[0]))
        return [(int(x), int(n)) for x, n in order]

    def summary(self) -> str:
        """:return: one line with the clear rate, mean max x_pos and mean return"""
        n = len(self.clears)
        return (
            f"episodes={n} clear_rate={self.clear_rate:.2f} ({sum(self.clears)}/{n}) "
            f"mean_max_x_pos={self.mean_max_x_pos:.1f} mean_return={self.mean_return:.1f} "
            f"mean_length={np.mean(self.lengths) if self.lengths else 0:.1f}"
        )


def evaluate_mario(
    model: BaseAlgorithm | BasePolicy,
    env: VecEnv,
    n_episodes: int = 20,
    deterministic: bool = True,
    first_seed: int = 0,
) -> MarioEvalResult:
    """
    Play ``n_episodes`` episodes one after another, episode i seeded with ``first_seed + i``.

    :param model: any SB3 algorithm or policy (``predict`` is used)
    :param env: a Mario VecEnv with one env (e.g. ``make_mario_env(..., n_envs=1)``)
    :param n_episodes: number of episodes
    :param deterministic: greedy actions (True) or the policy's exploration (False)
    :param first_seed: seed of the first episode
    :return: per-episode clears, farthest x positions, returns and lengths
    """
    if env.num_envs != 1:
        raise ValueError(
            f"evaluate_mario plays one seeded episode at a time: pass a VecEnv with one env, got {env.num_envs}."
        )
    result = MarioEvalResult()
    for episode in range(n_episodes):
        env.seed(first_seed + episode)
        obs = env.reset()
        episode_return, length = 0.0, 0
        while True:
            action, _ = model.predict(obs, deterministic=deterministic)  # type: ignore[arg-type]
            obs, rewards, dones, infos = env.step(action)
            episode_return += float(rewards[0])
            length += 1
            if dones[0]:
                info: dict[str, Any] = infos[0]
                break
        result.clears.append(bool(info.get("flag_get", False)))
        result.max_x_pos.append(int(info.get("max_x_pos", info.get("x_pos", 0))))
        result.returns.append(episode_return)
        result.lengths.append(length)
    return result


def compare_greedy_actions(
    reference: BaseAlgorithm | BasePolicy,
    candidate: BaseAlgorithm | BasePolicy,
    env: VecEnv,
    n_episodes: int = 20,
    first_seed: int = 0,
) -> tuple[int, tuple[int, int] | None]:
    """
    Play the episodes of :func:`evaluate_mario` with ``reference``'s greedy actions and ask ``candidate`` for its
    own at every step: whether a copy of a model (e.g. its float16 export) would play the same game.

    :param reference: the model whose actions are played
    :param candidate: the model compared with it
    :param env: a Mario VecEnv with one env
    :param n_episodes: number of episodes, episode i seeded with ``first_seed + i``
    :param first_seed: seed of the first episode
    :return: the steps compared, and ``(episode, step)`` of the first step where the actions differ (``None``: they
        never do); the comparison stops there
    """
    steps = 0
    for episode in range(n_episodes):
        env.seed(first_seed + episode)
        obs = env.reset()
        for step in range(10**7):
            action, _ = reference.predict(obs, deterministic=True)  # type: ignore[arg-type]
            steps += 1
            if not np.array_equal(action, candidate.predict(obs, deterministic=True)[0]):  # type: ignore[arg-type]
                return steps, (episode, step)
            obs, _, dones, _ = env.step(action)
            if dones[0]:
                break
    return steps, None


def pipeline_env_id(pipeline: dict[str, Any], env_id: str | None = None) -> str:
    """
    :param pipeline: what :func:`~sb3_mario.loading.load_model` returns beside the model
    :param env_id: an env id asked for (``None``: none)
    :return: ``env_id`` if given, else the one the model was trained on, else World 1-1's
    """
    return env_id or pipeline.get("env_id") or "SuperMarioBros-1-1-v0"


def trained_and_plain_sticky_actions(pipeline: dict[str, Any]) -> list[float]:
    """
    :param pipeline: what :func:`~sb3_mario.loading.load_model` returns beside the model (``wrapper_kwargs``)
    :return: the sticky-action probabilities a copy of the model (e.g. its float16 export) must play like it with:
        the one it was trained with, and none, once each (``[0.0]`` for a model trained without them)
    """
    return list(dict.fromkeys((float(pipeline.get("wrapper_kwargs", {}).get("sticky_actions", 0.0)), 0.0)))


def evaluate_pipeline(
    model: BaseAlgorithm | BasePolicy,
    pipeline: dict[str, Any],
    env_id: str,
    n_episodes: int = 20,
    noop_max: int = 30,
    sticky_actions: float | None = None,
) -> MarioEvalResult:
    """
    Play as ``python -m sb3_mario.evaluate`` plays: :func:`evaluate_mario` on an env built like the model's.

    :param model: what :func:`~sb3_mario.loading.load_model` loaded
    :param pipeline: what it returned beside the model
    :param env_id: the stage to play
    :param n_episodes: number of episodes, episode i seeded with i
    :param noop_max: random no-op frames at the start of each episode
    :param sticky_actions: sticky-action probability (``None``: as trained)
    :return: per-episode clears, farthest x positions, returns and lengths
    """
    env = make_pipeline_env(pipeline, env_id, noop_max, sticky_actions=sticky_actions)
    try:
        return evaluate_mario(model, env, n_episodes=n_episodes)
    finally:
        env.close()


def make_pipeline_env(
    pipeline: dict[str, Any],
    env_id: str = "SuperMarioBros-1-1-v0",
    noop_max: int = 30,
    frame_stack: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    **wrapper_overrides: Any,
) -> VecEnv:
    """
    One env built like the one a model was trained on, for evaluation.

    :param pipeline: what :func:`~sb3_mario.loading.load_model` returns beside the model
        (``wrapper_kwargs``, ``frame_stack``)
    :param env_id: gym-super-mario-bros id
    :param noop_max: random no-op frames at the start of each episode
    :param frame_stack: frames per observation (default: the pipeline's, else 4)
    :param env_kwargs: keyword arguments for ``gym.make`` (e.g. ``render_mode="rgb_array"``)
    :param wrapper_overrides: MarioWrapper arguments that replace the pipeline's (``None`` values are ignored)
    :return: a Mario VecEnv with one env
    """
    wrapper_kwargs = dict(pipeline.get("wrapper_kwargs", {}))
    wrapper_kwargs.update({key: value for key, value in wrapper_overrides.items() if value is not None})
    wrapper_kwargs["noop_max"] = noop_max
    frame_stack = frame_stack or pipeline.get("frame_stack", 4)
    return make_mario_env(
        env_id, n_envs=1, frame_stack=frame_stack, wrapper_kwargs=wrapper_kwargs, env_kwargs=env_kwargs
    )
