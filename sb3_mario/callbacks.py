"""SB3 callbacks for Mario: periodic evaluation with level-clear rate and farthest x position."""

import os
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecFrameStack

from sb3_mario.env import make_mario_env
from sb3_mario.evaluation import MarioEvalResult, evaluate_mario


class MarioEvalCallback(BaseCallback):
    """
    Every ``eval_freq`` calls, play ``n_eval_episodes`` greedy episodes and log ``eval/clear_rate``,
    ``eval/mean_max_x_pos``, ``eval/mean_reward`` and ``eval/mean_ep_length`` (stdout, TensorBoard, csv:
    wherever the model's logger writes).

    Without ``eval_env`` it builds one from the training env: same env id, same
    :class:`~sb3_mario.wrappers.MarioWrapper` arguments (``noop_max`` replaced by this callback's) and the
    same frame stack. That makes it usable from an rl-zoo yml::

        callback:
          - sb3_mario.callbacks.MarioEvalCallback:
              eval_freq: 25000
              n_eval_episodes: 10

    :param eval_env: a Mario VecEnv with one env, or None to build one from the training env
    :param n_eval_episodes: episodes per evaluation (episode i of evaluation k is seeded ``k * n + i``)
    :param eval_freq: evaluate every ``eval_freq`` calls of the callback (i.e. ``eval_freq * n_envs`` steps)
    :param deterministic: greedy actions
    :param noop_max: random no-op frames at the start of each evaluation episode (built eval env only)
    :param sticky_actions: probability that each NES frame repeats the previous frame's action (built eval env
        only; ``None``: as the training env)
    :param best_model_save_path: where to save ``best_model.zip`` (highest clear rate, then max x_pos)
    :param log_path: where to write ``mario_evaluations.npz`` (timesteps, clears, max_x_pos, returns, lengths)
    :param verbose: 1 prints one line per evaluation
    """

    def __init__(
        self,
        eval_env: VecEnv | None = None,
        n_eval_episodes: int = 5,
        eval_freq: int = 10000,
        deterministic: bool = True,
        noop_max: int = 30,
        sticky_actions: float | None = None,
        best_model_save_path: str | None = None,
        log_path: str | None = None,
        verbose: int = 1,
    ) -> None:
        super().__init__(verbose=verbose)
        if n_eval_episodes < 1 or eval_freq < 1:
            raise ValueError(f"Need n_eval_episodes >= 1 and eval_freq >= 1, got {n_eval_episodes}, {eval_freq}.")
        self.eval_env = eval_env
        self.n_eval_episodes = n_eval_episodes
        self.eval_freq = eval_freq
        self.deterministic = deterministic
        self.noop_max = noop_max
        self.sticky_actions = sticky_actions
        self.best_model_save_path = best_model_save_path
        self.log_path = log_path
        self.best_score: tuple[float, float] = (-np.inf, -np.inf)
        self.history: dict[str, list[Any]] = {k: [] for k in ("timesteps", "clears", "max_x_pos", "returns", "lengths")}
        self.last_result: MarioEvalResult | None = None
        self._owns_eval_env = False

    def _init_callback(self) -> None:
        if self.eval_env is None:
            self.eval_env = self._eval_env_like(self.training_env)
            self._owns_eval_env = True
        for path in (self.best_model_save_path, self.log_path):
            if path is not None:
                os.makedirs(path, exist_ok=True)

    def _eval_env_like(self, train_env: VecEnv) -> VecEnv:
        frame_stack, env = 1, train_env
        while isinstance(env, VecEnvWrapper):
            if isinstance(env, VecFrameStack):
                frame_stack = env.stacked_obs.n_stack
            env = env.venv
        try:
            wrapper_kwargs = dict(train_env.get_attr("mario_kwargs", indices=[0])[0])
        except AttributeError as exc:
            raise ValueError(
                "MarioEvalCallback could not find MarioWrapper in the training env; train on "
                "sb3_mario.make_mario_env(...) or pass eval_env=..."
            ) from exc
        env_id = train_env.get_attr("spec", indices=[0])[0].id
        wrapper_kwargs["noop_max"] = self.noop_max
        if self.sticky_actions is not None:
            wrapper_kwargs["sticky_actions"] = self.sticky_actions
        return make_mario_env(env_id, n_envs=1, frame_stack=frame_stack, wrapper_kwargs=wrapper_kwargs)

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq != 0:
            return True
        assert self.eval_env is not None
        first_seed = len(self.history["timesteps"]) * self.n_eval_episodes
        result = evaluate_mario(self.model, self.eval_env, self.n_eval_episodes, self.deterministic, first_seed)
        self.last_result = result
        for key, value in (
            ("timesteps", self.num_timesteps),
            ("clears", result.clears),
            ("max_x_pos", result.max_x_pos),
            ("returns", result.returns),
            ("lengths", result.lengths),
        ):
            self.history[key].append(value)
        self.logger.record("eval/clear_rate", result.clear_rate)
        self.logger.record("eval/mean_max_x_pos", result.mean_max_x_pos)
        self.logger.record("eval/mean_reward", result.mean_return)
        self.logger.record("eval/mean_ep_length", float(np.mean(result.lengths)))
        if self.verbose >= 1:
            print(f"Mario eval num_timesteps={self.num_timesteps}: {result.summary()}")
        if self.log_path is not None:
            history = {key: np.array(value) for key, value in self.history.items()}
            np.savez(os.path.join(self.log_path, "mario_evaluations.npz"), allow_pickle=False, **history)
        score = (result.clear_rate, result.mean_max_x_pos)
        if score > self.best_score:
            self.best_score = score
            if self.best_model_save_path is not None:
                self.model.save(os.path.join(self.best_model_save_path, "best_model"))
        self.logger.dump(self.num_timesteps)
        return True

    def _on_training_end(self) -> None:
        if self._owns_eval_env and self.eval_env is not None:
            self.eval_env.close()
            self.eval_env = None
