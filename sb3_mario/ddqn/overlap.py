"""The fast path's learn loop: ``DoubleDQN(overlap_env_step=True)`` and ``DoubleDQN(async_envs=True)``.

SB3's ``OffPolicyAlgorithm.learn`` alternates: step every env (the emulators work, the GPU idles), then train
(the GPU works, the emulators idle). :class:`OverlappedLoop` is the same loop with the two overlapped: it sends the
actions (``step_async``), takes the gradient steps that SB3 would have taken after the previous rollout (through
the model's own ``train``), then collects the observations (``step_wait``). Each gradient step therefore sees the
replay buffer as it was one vec-env step earlier; the callbacks, counters, replay rows, schedules and logs are
SB3's.

With ``async_envs`` the env side is :class:`~sb3_mario.ddqn.actors.AsyncEnvs`: each ``SubprocVecEnv`` worker is
served as soon as its step arrives, its next actions picked here (:meth:`OverlappedLoop.explore`, epsilon-greedy as
SB3's ``_sample_action``; on a GPU with ``cuda_graph``, greedy actions from :class:`~sb3_mario.ddqn.acting.ActingCopy`),
and the pending gradient steps are taken, up to ``SAMPLE_CHUNK`` a call, while the trainer waits for workers. When
a callback stops ``learn``, the stopping step (which SB3 counts but does not store) and the steps in flight are
stored, so that the replay rows stay consecutive.

This loop is the fast path's only contact with the algorithm: ``DoubleDQN.learn`` hands it the run. The model's
env stays the one the user gave, so ``get_env()``, callbacks and ``train()`` after ``learn`` see SB3's behaviour.
"""

import warnings
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import MaybeCallback, RolloutReturn, TrainFrequencyUnit
from stable_baselines3.common.utils import should_collect_more_steps
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.dqn import DQN

from sb3_mario.ddqn.acting import ActingCopy
from sb3_mario.ddqn.actors import WORKER_GONE, AsyncEnvs, async_layers
from sb3_mario.ddqn.exploration import ExtendedExploration
from sb3_mario.ddqn.learner import SAMPLE_CHUNK


class OverlappedLoop:
    """
    One ``learn`` of a DQN-family model, with its gradient steps taken while the envs step (see the module).

    :param model: the algorithm (``DoubleDQN``); its ``train`` takes the gradient steps
    :param async_envs: serve each ``SubprocVecEnv`` worker as soon as its step arrives (falls back to lock-step
        envs, with a warning, when the env is not one)
    :param exploration: ez-greedy's state (``None``: epsilon-greedy), for the actions that async envs are served
    """

    def __init__(self, model: DQN, async_envs: bool = False, exploration: ExtendedExploration | None = None) -> None:
        self.model = model
        self.async_envs = async_envs
        self.exploration = exploration
        #: gradient steps owed by the rollouts so far, taken while the envs take their next steps
        self.pending = 0
        #: the async env side during learn (None: lock-step envs)
        self.envs: AsyncEnvs | None = None
        #: greedy actions for the async envs from CUDA graphs of a weight copy (GPU, cuda_graph=True)
        self.acting: ActingCopy | None = None
        self._learn_start = 0  # num_timesteps when learn began

    def learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int | None = 4,
        tb_log_name: str = "run",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> DQN:
        """
        SB3's ``OffPolicyAlgorithm.learn``, overlapped; same arguments.

        :return: the model
        """
        model = self.model
        total_timesteps, callback = model._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        callback.on_training_start(locals(), globals())
        assert model.env is not None, "You must set the environment before calling learn()"
        self._learn_start = model.num_timesteps
        env = self._start_envs(model.env)
        try:
            while model.num_timesteps < total_timesteps:
                rollout = self.collect_rollouts(env, callback, log_interval)
                if not rollout.continue_training:
                    break
                if model.num_timesteps > 0 and model.num_timesteps > model.learning_starts:
                    # As SB3: gradient_steps, or as many as env steps if -1; taken while the envs step next
                    self.pending += model.gradient_steps if model.gradient_steps >= 0 else rollout.episode_timesteps
            if self.envs is not None:
                for step in self.envs.drain():  # the steps in flight, stored as SB3 stores a step
                    model.num_timesteps += env.num_envs
                    self._store(*step)
            self.train_pending()
        except WORKER_GONE:
            raise
        except BaseException:
            if self.envs is not None:
                self.envs.settle()  # a callback's error, Ctrl-C: the workers are alive, their steps come back first
            raise
        finally:
            if self.envs is not None:
                self.envs.abandon()  # nothing in flight after a drain; after an error, its workers may be gone
            self.envs = self.acting = None
        callback.on_training_end()
        return model

    def collect_rollouts(self, env: VecEnv, callback: BaseCallback, log_interval: int | None) -> RolloutReturn:
        """
        SB3's ``OffPolicyAlgorithm.collect_rollouts`` for a DQN (no action noise, no gSDE), with the pending gradient
        steps taken while the envs step.

        :param env: the training env (the async env side, if any)
        :param callback: the learn's callback
        :param log_interval: dump the logs every this many episodes
        :return: what SB3's returns
        """
        model = self.model
        # No switch to eval mode here, unlike SB3: the actions come from policy.predict, which switches to it itself,
        # or from the acting copies, always in eval mode; train() switches back only when predict has switched
        num_collected_steps, num_collected_episodes = 0, 0
        assert model.train_freq.frequency > 0, "Should at least collect one step or episode."  # type: ignore[union-attr]
        callback.on_rollout_start()
        while should_collect_more_steps(model.train_freq, num_collected_steps, num_collected_episodes):  # type: ignore[arg-type]
            # Select action randomly or according to policy (async envs: picked env by env, and already sent)
            sent = self.envs.in_flight if self.envs is not None else None
            actions = sent if sent is not None else model._sample_action(model.learning_starts, None, env.num_envs)[0]
            # Send them, take the pending gradient steps while the envs step (async: up to SAMPLE_CHUNK a call), collect
            env.step_async(actions)
            if self.envs is None:
                self.train_pending()
            new_obs, rewards, dones, infos = env.step_wait()
            model.num_timesteps += env.num_envs
            num_collected_steps += 1
            # Give access to local variables
            callback.update_locals(locals())
            # Only stop training if return value is False, not when it is None.
            if not callback.on_step():
                if self.envs is not None:
                    self._store(actions, new_obs, rewards, dones, infos)  # before the steps in flight
                collected = num_collected_steps * env.num_envs
                return RolloutReturn(collected, num_collected_episodes, continue_training=False)
            num_collected_episodes += self._store(actions, new_obs, rewards, dones, infos, log_interval)
        callback.on_rollout_end()
        return RolloutReturn(num_collected_steps * env.num_envs, num_collected_episodes, continue_training=True)

    def train_pending(self, limit: int | None = None) -> bool:
        """
        Take the pending gradient steps with the model's ``train`` (all of them, or at most ``limit``).

        :param limit: the most steps to take now
        :return: whether there were any
        """
        steps = self.pending if limit is None else min(limit, self.pending)
        self.pending -= steps
        if steps > 0:
            self.model.train(gradient_steps=steps, batch_size=self.model.batch_size)
            if self.acting is not None:
                self.acting.refresh()
        return steps > 0

    def explore(self, observations: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """
        SB3's ``_sample_action`` for one group of async envs: random before ``learning_starts``, then epsilon-greedy
        (or ez-greedy, env by env).

        :param observations: the stacked observations of those envs
        :param envs: their indices
        :return: their actions
        """
        model = self.model
        if model.num_timesteps >= model.learning_starts and self.exploration is not None:
            # ez-greedy: the exploring envs repeat their action, the others act greedily
            if self.acting is not None:
                greedy = self.acting(observations)
            else:
                greedy = model.predict(observations, deterministic=True)[0]
            return self.exploration.choose(envs, model.exploration_rate, greedy)
        if model.num_timesteps >= model.learning_starts:
            if self.acting is None:
                return model.predict(observations, deterministic=False)[0]
            # as DQN.predict: greedy actions (from the copy) unless exploring, with probability exploration_rate
            if np.random.rand() >= model.exploration_rate:
                return self.acting(observations)
        return np.array([model.action_space.sample() for _ in range(len(observations))])

    def _store(
        self,
        actions: np.ndarray,
        new_obs: Any,
        rewards: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
        log_interval: int | None = None,
    ) -> int:
        # what SB3's collect_rollouts does with a step after the callback: the episode stats, the replay row, the
        # progress, DQN's target update and exploration schedule, the episode count and the logs; returns the
        # episodes that ended
        model = self.model
        # Retrieve reward and episode length if using Monitor wrapper
        model._update_info_buffer(infos, dones)
        # Store data in replay buffer (normalized action and unnormalized observation)
        model._store_transition(model.replay_buffer, actions, new_obs, rewards, dones, infos)  # type: ignore[arg-type]
        model._update_current_progress_remaining(model.num_timesteps, model._total_timesteps)
        # For DQN, check if the target network should be updated and update the exploration schedule
        model._on_step()
        ended = int(np.sum(dones))
        for _ in range(ended):
            model._episode_num += 1
            # Log training infos
            if log_interval is not None and model._episode_num % log_interval == 0:
                model.dump_logs()
        return ended

    def _rows_left(self) -> int | None:
        # vec-env steps that the loop will still take, the one being collected included: whole rollouts of
        # train_freq steps while num_timesteps < total. None when train_freq counts episodes (not known).
        model = self.model
        if model.train_freq.unit != TrainFrequencyUnit.STEP:  # type: ignore[union-attr]
            return None
        freq = model.train_freq.frequency  # type: ignore[union-attr]
        rows_needed = -(-(model._total_timesteps - self._learn_start) // model.n_envs)
        rows_taken = (model.num_timesteps - self._learn_start) // model.n_envs
        return -(-rows_needed // freq) * freq - rows_taken

    def _start_envs(self, env: VecEnv) -> VecEnv:
        # the async env side when asked for and possible; else the env as it is (lock-step, overlapped)
        if not self.async_envs:
            return env
        if async_layers(env) is None:
            warnings.warn(
                "async_envs=True needs envs in subprocesses (rl-zoo: --vec-env subproc; Python: "
                "make_mario_env(..., vec_env_cls='subproc')), with at most VecFrameStack and VecTransposeImage "
                f"around them; this env is {describe_vec_env(env)}, so all envs step together and the "
                "gradient steps run while they step (overlap_env_step).",
                stacklevel=4,
            )
            return env
        model = self.model
        on_gpu = model.device.type == "cuda"
        self.envs = AsyncEnvs(
            env, lambda: self.train_pending(limit=SAMPLE_CHUNK), nice_workers=on_gpu, rows_left=self._rows_left
        )
        self.envs.act = self.explore
        if on_gpu and getattr(model, "cuda_graph", False) and isinstance(model.observation_space, spaces.Box):
            self.acting = ActingCopy(model.policy)  # greedy actions as CUDA graphs, waiting for no update
        return self.envs


def describe_vec_env(venv: VecEnv) -> str:
    """
    :param venv: a VecEnv, wrappers included
    :return: its layers, outermost first, e.g. ``"VecTransposeImage(VecFrameStack(DummyVecEnv))"``
    """
    names = []
    while True:
        names.append(type(venv).__name__)
        if not hasattr(venv, "venv"):
            break
        venv = venv.venv
    return "(".join(names) + ")" * (len(names) - 1)
