"""SB3 callbacks for Mario: periodic evaluation with level-clear rate and farthest x position, in the trainer's
process or in worker processes, keeping the run's pick by clear rate as ``best_model.zip``."""

import atexit
import math
import os
import shutil
import tempfile
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper, VecFrameStack

from sb3_mario.ddqn import DoubleDQN
from sb3_mario.env import make_mario_env
from sb3_mario.eval_workers import EvalWorkers, PendingEvaluation
from sb3_mario.evaluation import MarioEvalResult, evaluate_mario
from sb3_mario.weights import export_weights


def training_pipeline(train_env: VecEnv) -> tuple[str, dict[str, Any], int]:
    """
    :param train_env: a VecEnv of :func:`~sb3_mario.env.make_mario_env` (or rl-zoo's, with ``MarioWrapper``)
    :return: its env id, its ``MarioWrapper`` arguments and its frame stack (1 without ``VecFrameStack``)
    """
    frame_stack, env = 1, train_env
    while isinstance(env, VecEnvWrapper):
        if isinstance(env, VecFrameStack):
            frame_stack = env.stacked_obs.n_stack
        env = env.venv
    try:
        wrapper_kwargs = dict(train_env.get_attr("mario_kwargs", indices=[0])[0])
    except AttributeError as exc:
        raise ValueError(
            "Found no MarioWrapper in the training env: train on sb3_mario.make_mario_env(...) (MarioEvalCallback "
            "also takes an eval_env=... of your own)."
        ) from exc
    return train_env.get_attr("spec", indices=[0])[0].id, wrapper_kwargs, frame_stack


def within_noise_of_best(
    score: tuple[float, float], best_clear_rate: float, n_episodes: int, pick: tuple[float, float]
) -> bool:
    """
    Whether a new evaluation replaces the run's pick: once an episode has been cleared, when its clear rate is
    within one standard error (``sqrt(p (1 - p) / n)``) of the best rate ``p`` so far, itself included; before
    that, when its mean max x position is higher than the pick's.

    :param score: the new evaluation's (clear rate, mean max x position)
    :param best_clear_rate: the highest clear rate so far, the new evaluation's included
    :param n_episodes: episodes per evaluation
    :param pick: the (clear rate, mean max x position) of the current pick, ``(-inf, -inf)`` for none
    :return: True when the new evaluation becomes the pick
    """
    clear_rate, max_x_pos = score
    if best_clear_rate > 0:
        noise = math.sqrt(best_clear_rate * (1 - best_clear_rate) / n_episodes)
        return clear_rate >= best_clear_rate - noise - 1e-9
    return max_x_pos > pick[1]


class MarioEvalCallback(BaseCallback):
    """
    Every ``eval_freq`` calls, play ``n_eval_episodes`` greedy episodes and log ``eval/clear_rate``,
    ``eval/mean_max_x_pos``, ``eval/mean_reward`` and ``eval/mean_ep_length`` (stdout, TensorBoard, csv:
    wherever the model's logger writes), and keep the run's pick as ``best_model.zip``: the latest checkpoint whose
    clear rate is within one standard error of the highest so far (:func:`within_noise_of_best`; before any
    episode is cleared, the highest mean max x position). A later checkpoint has trained longer, and
    ``n_eval_episodes`` episodes cannot tell clear rates apart that are closer than that (20 episodes at a rate of
    0.6: +-0.11). ``prefer_later=False`` keeps the highest (clear rate, mean max x position) instead.

    With ``n_eval_workers=0`` the episodes are played in the trainer's process, which waits for them. With
    ``n_eval_workers > 0`` they are played in that many worker processes (:mod:`sb3_mario.eval_workers`) while
    training goes on: the trainer writes the checkpoint's weights (and, for ``best_model.zip``, the model) and
    collects the results later; each evaluation is logged at the step of its checkpoint, and the last ones are
    waited for when training ends. When training ends (not when it is interrupted) after at least one evaluation, the
    final model is evaluated too, unless it just was, so that it can be ``best_model.zip``.

    Without ``eval_env`` it builds one from the training env: same env id, same
    :class:`~sb3_mario.wrappers.MarioWrapper` arguments (``noop_max`` replaced by this callback's) and the
    same frame stack. That makes it usable from an rl-zoo yml::

        callback:
          - sb3_mario.callbacks.MarioEvalCallback:
              eval_freq: 25000
              n_eval_episodes: 10

    :param eval_env: a Mario VecEnv with one env, or None to build one from the training env (in-process only)
    :param n_eval_episodes: episodes per evaluation; episode i of evaluation k (k = 1, 2, ...) is seeded ``k * n + i``,
        so no evaluation plays the seeds 0..n-1 that ``python -m sb3_mario.evaluate`` reports
    :param eval_freq: evaluate every ``eval_freq`` calls of the callback (i.e. ``eval_freq * n_envs`` steps)
    :param deterministic: greedy actions
    :param noop_max: random no-op frames at the start of each evaluation episode (built eval env only)
    :param sticky_actions: probability that each NES frame repeats the previous frame's action (built eval env
        only; ``None``: as the training env)
    :param best_model_save_path: where to save ``best_model.zip`` (highest clear rate, then max x_pos)
    :param log_path: where to write ``mario_evaluations.npz`` (timesteps, clears, max_x_pos, returns, lengths) and
        rl-zoo's ``evaluations.npz`` (timesteps, results, ep_lengths)
    :param n_eval_workers: worker processes that play the episodes while training goes on (0: the trainer plays
        them; needs ``eval_env=None`` and a greedy policy with a ``q_net``, as DoubleDQN and DQN have)
    :param prefer_later: keep the latest checkpoint within one standard error of the best clear rate (True) or the
        best (clear rate, mean max x position) (False) as ``best_model.zip``
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
        n_eval_workers: int = 0,
        prefer_later: bool = True,
        verbose: int = 1,
    ) -> None:
        super().__init__(verbose=verbose)
        if n_eval_episodes < 1 or eval_freq < 1 or n_eval_workers < 0:
            raise ValueError(
                f"Need n_eval_episodes >= 1, eval_freq >= 1 and n_eval_workers >= 0, got {n_eval_episodes}, "
                f"{eval_freq}, {n_eval_workers}."
            )
        if n_eval_workers > 0 and (eval_env is not None or not deterministic):
            raise ValueError("n_eval_workers > 0 builds its eval envs from the training env and plays greedily: "
                             "pass eval_env=None and deterministic=True, or n_eval_workers=0.")  # fmt: skip
        self.eval_env = eval_env
        self.n_eval_episodes = n_eval_episodes
        self.eval_freq = eval_freq
        self.deterministic = deterministic
        self.noop_max = noop_max
        self.sticky_actions = sticky_actions
        self.best_model_save_path = best_model_save_path
        self.log_path = log_path
        self.n_eval_workers = n_eval_workers
        self.prefer_later = prefer_later
        #: the best (clear rate, mean max x position) so far, and that of the checkpoint in best_model.zip
        self.best_score: tuple[float, float] = (-np.inf, -np.inf)
        self.pick_score: tuple[float, float] = (-np.inf, -np.inf)
        self.history: dict[str, list[Any]] = {k: [] for k in ("timesteps", "clears", "max_x_pos", "returns", "lengths")}
        self.last_result: MarioEvalResult | None = None
        self._owns_eval_env = False
        self._workers: EvalWorkers | None = None
        self._checkpoints: str | None = None  # folder of the checkpoints in flight (n_eval_workers > 0)
        self._evaluations = 0
        self._evaluated_at = -1  # num_timesteps of the last evaluation started

    def _init_callback(self) -> None:
        for path in (self.best_model_save_path, self.log_path):
            if path is not None:
                os.makedirs(path, exist_ok=True)
        if self.n_eval_workers > 0:
            env_id, wrapper_kwargs, frame_stack = self._pipeline_of(self.training_env)
            pipeline = {"wrapper_kwargs": wrapper_kwargs, "frame_stack": frame_stack}
            self._workers = EvalWorkers(self.n_eval_workers, env_id, pipeline)
            self._checkpoints = tempfile.mkdtemp(prefix="mario-eval-", dir=self.best_model_save_path)
            # gone at the end of training, and also after an interrupt (SB3 then skips _on_training_end)
            atexit.register(shutil.rmtree, self._checkpoints, True)
        elif self.eval_env is None:
            env_id, wrapper_kwargs, frame_stack = self._pipeline_of(self.training_env)
            self.eval_env = make_mario_env(env_id, n_envs=1, frame_stack=frame_stack, wrapper_kwargs=wrapper_kwargs)
            self._owns_eval_env = True

    def _pipeline_of(self, train_env: VecEnv) -> tuple[str, dict[str, Any], int]:
        # the training env's pipeline, with this callback's noop_max and sticky_actions
        env_id, wrapper_kwargs, frame_stack = training_pipeline(train_env)
        wrapper_kwargs["noop_max"] = self.noop_max
        if self.sticky_actions is not None:
            wrapper_kwargs["sticky_actions"] = self.sticky_actions
        return env_id, wrapper_kwargs, frame_stack

    def _on_step(self) -> bool:
        if self._workers is not None:
            for pending, result in self._workers.finished():
                self._report(pending.num_timesteps, result, pending)
        if self.n_calls % self.eval_freq == 0:
            self._evaluate()
        return True

    def _evaluate(self) -> None:
        # evaluate the model as it is now: in the workers (a checkpoint goes to them) or here
        if isinstance(self.model, DoubleDQN) and self.model.float16_checkpoints:
            self.model.round_to_float16()  # the evaluated weights are those that best_model.zip will hold
        self._evaluated_at = self.num_timesteps
        self._evaluations += 1
        first_seed = self._evaluations * self.n_eval_episodes
        if self._workers is not None:
            assert self._checkpoints is not None
            stem = os.path.join(self._checkpoints, f"model_{self.num_timesteps}")
            pt, _ = export_weights(self.model, stem)
            if self.best_model_save_path is not None:
                self.model.save(stem)  # a candidate for best_model.zip, as it is now
            self._workers.submit(str(pt), self.num_timesteps, first_seed, self.n_eval_episodes)
            return
        assert self.eval_env is not None
        result = evaluate_mario(self.model, self.eval_env, self.n_eval_episodes, self.deterministic, first_seed)
        self._report(self.num_timesteps, result)

    def _report(self, num_timesteps: int, result: MarioEvalResult, pending: PendingEvaluation | None = None) -> None:
        # log one evaluation (at its checkpoint's step), write the npz files, keep the best model
        self.last_result = result
        for key, value in (
            ("timesteps", num_timesteps),
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
            print(f"Mario eval num_timesteps={num_timesteps}: {result.summary()}")
        if self.log_path is not None:
            history = {key: np.array(value) for key, value in self.history.items()}
            np.savez(os.path.join(self.log_path, "mario_evaluations.npz"), allow_pickle=False, **history)
            # rl-zoo's and SB3's EvalCallback format, which rl-zoo's plot scripts read
            np.savez(os.path.join(self.log_path, "evaluations.npz"), timesteps=history["timesteps"],
                     results=history["returns"], ep_lengths=history["lengths"])  # fmt: skip
        score = (result.clear_rate, result.mean_max_x_pos)
        previous_best, self.best_score = self.best_score, max(self.best_score, score)
        if self.prefer_later:
            picked = within_noise_of_best(score, self.best_score[0], len(result.clears), self.pick_score)
        else:
            picked = score > previous_best
        if picked:
            self.pick_score = score
        if self.best_model_save_path is not None:
            best_model = os.path.join(self.best_model_save_path, "best_model.zip")
            if pending is None and picked:
                self.model.save(best_model)
            elif pending is not None and picked:
                os.replace(pending.weights.removesuffix(".pt") + ".zip", best_model)
        if pending is not None:
            for suffix in (".pt", ".json", ".zip"):
                path = pending.weights.removesuffix(".pt") + suffix
                if os.path.exists(path):
                    os.unlink(path)
        self.logger.dump(num_timesteps)

    def _on_training_end(self) -> None:
        if 0 < self._evaluations and self._evaluated_at != self.num_timesteps:
            self._evaluate()  # the final model competes with the checkpoints evaluated so far
        if self._workers is not None:
            for pending, result in self._workers.finished(wait=True):
                self._report(pending.num_timesteps, result, pending)
            self._workers.close()
            self._workers = None
            if self._checkpoints is not None:
                shutil.rmtree(self._checkpoints, ignore_errors=True)
        if self._owns_eval_env and self.eval_env is not None:
            self.eval_env.close()
            self.eval_env = None
