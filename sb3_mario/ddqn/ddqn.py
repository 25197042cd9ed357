"""``DoubleDQN``: SB3's DQN with the Double-DQN target, checked hyperparameters, atomic saves and checked loads."""

import io
import pathlib
import time
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.save_util import save_to_pkl
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.dqn import DQN
from stable_baselines3.dqn.policies import CnnPolicy, DQNPolicy, MlpPolicy, MultiInputPolicy

from sb3_mario.buffers import FilledRows, FrameReplayBuffer, describe_replay_buffer
from sb3_mario.cnn import MarioCNN
from sb3_mario.ddqn.actors import WORKER_GONE
from sb3_mario.ddqn.exploration import ExtendedExploration
from sb3_mario.ddqn.graph import set_learning_rate
from sb3_mario.ddqn.hyperparameters import check_hyperparameters
from sb3_mario.ddqn.learner import Learner, set_training_mode
from sb3_mario.ddqn.overlap import OverlappedLoop
from sb3_mario.ddqn.update import fuse_optimizer
from sb3_mario.files import atomic_write, check_model_zip, with_suffix
from sb3_mario.memory import check_replay_memory, replay_buffer_bytes
from sb3_mario.prioritized_replay import PrioritizedFrameReplayBuffer

SelfDoubleDQN = TypeVar("SelfDoubleDQN", bound="DoubleDQN")
# the replay buffers whose n-step returns take a gamma of their own
N_STEP_BUFFERS = (FrameReplayBuffer, NStepReplayBuffer)


class DoubleDQN(DQN):
    """
    Double Deep Q-Network (Double DQN)

    Paper: "Deep Reinforcement Learning with Double Q-learning", van Hasselt, Guez and Silver, AAAI 2016,
    https://arxiv.org/abs/1509.06461

    Identical to Stable-Baselines3's :class:`~stable_baselines3.dqn.DQN` (same arguments, n-step returns,
    Huber loss, gradient clipping, target network, logging and save/load) except for the bootstrap target:
    the **online** network picks the next action, the **target** network scores it::

        a* = argmax_a Q_online(s', a)
        y  = r + (1 - done) * gamma^n * Q_target(s', a*)

    whereas DQN uses ``max_a Q_target(s', a)``, which over-estimates action values.

    With ``replay_buffer_class=PrioritizedFrameReplayBuffer`` (prioritized replay, Schaul et al. 2016), each
    sample's Huber loss is scaled by its importance-sampling weight and its new TD error becomes its priority.

    Adam (and AdamW) run fused, one kernel for every weight, unless ``optimizer_kwargs`` sets ``fused`` or
    ``foreach``: the same algorithm, rounded differently (see :func:`fuse_optimizer`).

    Policies whose ``features_extractor_class`` is :class:`~sb3_mario.MarioCNN` get ``net_arch=[]`` unless
    ``policy_kwargs`` says otherwise, so the Q-head is one linear layer on the 512 features, as SB3 does for
    ``NatureCNN``.

    All parameters are those of :class:`~stable_baselines3.dqn.DQN`; see its documentation.

    :param policy: The policy model to use (MlpPolicy, CnnPolicy, MultiInputPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: The learning rate, it can be a function of the current progress remaining (from 1 to 0)
    :param buffer_size: size of the replay buffer
    :param learning_starts: how many steps of the model to collect transitions for before learning starts
    :param batch_size: Minibatch size for each gradient update
    :param tau: the soft update coefficient ("Polyak update", between 0 and 1) default 1 for hard update
    :param gamma: the discount factor
    :param train_freq: Update the model every ``train_freq`` steps, or a tuple like ``(5, "step")``
    :param gradient_steps: How many gradient steps to do after each rollout (``-1``: as many as env steps)
    :param replay_buffer_class: Replay buffer class to use. If ``None``, it will be automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation. An n-step buffer
        (``FrameReplayBuffer``, SB3's ``NStepReplayBuffer``) given no ``gamma`` gets the algorithm's; another
        ``gamma`` than the algorithm's is refused.
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
    :param n_steps: n-step returns (with SB3's NStepReplayBuffer) when ``replay_buffer_class`` is ``None``
    :param target_update_interval: update the target network every ``target_update_interval`` environment steps.
    :param exploration_fraction: fraction of entire training period over which the exploration rate is reduced
    :param exploration_initial_eps: initial value of random action probability
    :param exploration_final_eps: final value of random action probability
    :param max_grad_norm: The maximum value for the gradient clipping
    :param stats_window_size: Window size for the rollout logging
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation
    :param verbose: Verbosity level: 0 no output, 1 info messages, 2 debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run. "auto": the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    :param cuda_graph: fast learner: run each gradient step as one captured CUDA graph (CUDA devices only;
        the same update, see :mod:`sb3_mario.ddqn.graph`). Needs a capturable optimizer (Adam, the default).
        With ``async_envs`` and Box observations, the greedy actions too come from CUDA graphs, of a copy of the
        online weights refreshed after each few gradient steps (see :mod:`sb3_mario.ddqn.acting`)
    :param overlap_env_step: take the gradient steps while the env workers step (worth it with
        ``SubprocVecEnv``; see :mod:`sb3_mario.ddqn.overlap`): updates see the buffer one vec-env step late
    :param async_envs: serve each ``SubprocVecEnv`` worker as soon as its step arrives instead of waiting for
        all of them (see :mod:`sb3_mario.ddqn.actors`); implies ``overlap_env_step``
    :param ez_greedy_mu: explore with temporally-extended epsilon-greedy (Dabney et al. 2021, see
        :mod:`sb3_mario.ddqn.exploration`): with probability ``exploration_rate`` an env repeats one random action
        for a zeta(``ez_greedy_mu``)-distributed number of steps (the paper uses 2). ``None`` (the default):
        SB3's epsilon-greedy
    :param ez_greedy_max_duration: the longest such repetition, in agent steps
    :param failure_restarts: Mario envs only: the probability that a training episode starts from the state of an
        earlier failed one (1..``failure_restart_steps`` agent steps before Mario died or got stuck) instead of the
        stage's start (see :mod:`sb3_mario.restarts`). 0 (the default): every episode starts at the stage's start.
        Evaluation always plays from the stage's start
    :param failure_restart_steps: how many agent steps before a failure its restart state may lie, at most
    :param learning_rate_final: where given, the learning rate falls linearly, as the exploration rate does, from
        ``learning_rate`` (its value at the start, where it is a schedule) to ``learning_rate_final`` over the
        first ``learning_rate_fraction`` of training, and stays there. ``None`` (the default): ``learning_rate``
        as given
    :param learning_rate_fraction: the fraction of training over which the learning rate falls to
        ``learning_rate_final``
    :param float16_checkpoints: round the online Q-network's weights to the nearest float16 values (kept as
        float32, in place) before each ``save`` (so rl-zoo's checkpoints and final model too) and each evaluation of
        :class:`~sb3_mario.MarioEvalCallback`: every saved or evaluated model then plays exactly as its float16 copy
        (``export_weights(..., half=True)``, half the file size). Training goes on from the rounded weights; each
        moves by at most 2^-11 of itself (those under 6.1e-5 by at most 3e-8); on World 1-1 the median move is a
        thousandth of what 100k steps of training move a weight (benchmarks/README.md, "Checkpoints in float16")
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DQNPolicy

    def __init__(
        self,
        policy: str | type[DQNPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 32,
        tau: float = 1.0,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 4,
        gradient_steps: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        target_update_interval: int = 10000,
        exploration_fraction: float = 0.1,
        exploration_initial_eps: float = 1.0,
        exploration_final_eps: float = 0.05,
        max_grad_norm: float = 10,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
        cuda_graph: bool = False,
        overlap_env_step: bool = False,
        async_envs: bool = False,
        ez_greedy_mu: float | None = None,
        ez_greedy_max_duration: int = 100,
        failure_restarts: float = 0.0,
        failure_restart_steps: int = 30,
        learning_rate_final: float | None = None,
        learning_rate_fraction: float = 1.0,
        float16_checkpoints: bool = False,
    ) -> None:
        self.cuda_graph = cuda_graph
        self.overlap_env_step = overlap_env_step
        self.async_envs = async_envs
        self._channels_last = False  # set by _setup_model
        self._learner: Learner | None = None  # built by the first train()
        self._said_learning_starts = False
        self.ez_greedy_mu = ez_greedy_mu
        self.ez_greedy_max_duration = ez_greedy_max_duration
        self._exploration: ExtendedExploration | None = None  # built for the env's number of envs when needed
        self.failure_restarts = failure_restarts
        self.failure_restart_steps = failure_restart_steps
        self.learning_rate_final = learning_rate_final
        self.learning_rate_fraction = learning_rate_fraction
        self.float16_checkpoints = float16_checkpoints
        # ez-greedy's settings are checked only where it is on (None: epsilon-greedy), the falling learning rate's
        # only where it falls
        ez_greedy = {} if ez_greedy_mu is None else dict(ez_greedy_mu=ez_greedy_mu,
                                                         ez_greedy_max_duration=ez_greedy_max_duration)  # fmt: skip
        falling = {}
        if learning_rate_final is not None:
            falling = dict(learning_rate_final=learning_rate_final, learning_rate_fraction=learning_rate_fraction)
        check_hyperparameters(
            **ez_greedy,
            **falling,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            gradient_steps=gradient_steps,
            n_steps=n_steps,
            target_update_interval=target_update_interval,
            exploration_fraction=exploration_fraction,
            exploration_initial_eps=exploration_initial_eps,
            exploration_final_eps=exploration_final_eps,
            max_grad_norm=max_grad_norm,
            failure_restarts=failure_restarts,
            failure_restart_steps=failure_restart_steps,
        )
        if learning_rate_final is not None:
            # from the start value (rl-zoo hands even a constant over as a schedule) down to the floor, then flat
            start = learning_rate(1.0) if callable(learning_rate) else learning_rate
            learning_rate = LinearSchedule(float(start), learning_rate_final, learning_rate_fraction)
        replay_buffer_kwargs = dict(replay_buffer_kwargs or {})
        if isinstance(replay_buffer_class, type) and issubclass(replay_buffer_class, N_STEP_BUFFERS):
            # an n-step buffer given no gamma discounts as the algorithm does, not with its own default of 0.99
            replay_buffer_kwargs.setdefault("gamma", gamma)
        buffer_gamma = replay_buffer_kwargs.get("gamma", gamma)
        if buffer_gamma != gamma:
            # the buffer's n-step returns and their bootstrap discount would use one discount, nothing else the other
            fixed = ", ".join(f"{k}={v!r}" for k, v in {**replay_buffer_kwargs, "gamma": gamma}.items())
            raise ValueError(
                f"replay_buffer_kwargs has gamma={buffer_gamma!r} but DoubleDQN has gamma={gamma!r}: the replay "
                "buffer's n-step returns would discount with the first and ignore the second. Give both the same "
                f"value: replay_buffer_kwargs=dict({fixed}) (rl-zoo: --hyperparams gamma:{gamma!r} "
                f'"replay_buffer_kwargs:dict({fixed})").'
            )
        policy_kwargs = dict(policy_kwargs or {})
        extractor = policy_kwargs.get("features_extractor_class")
        if isinstance(extractor, type) and issubclass(extractor, MarioCNN):
            # As SB3 does for NatureCNN: a single linear Q-head on top of the 512 features
            policy_kwargs.setdefault("net_arch", [])
        try:
            super().__init__(
                policy,
                env,
                learning_rate=learning_rate,
                buffer_size=buffer_size,
                learning_starts=learning_starts,
                batch_size=batch_size,
                tau=tau,
                gamma=gamma,
                train_freq=train_freq,
                gradient_steps=gradient_steps,
                replay_buffer_class=replay_buffer_class,
                replay_buffer_kwargs=replay_buffer_kwargs,
                optimize_memory_usage=optimize_memory_usage,
                n_steps=n_steps,
                target_update_interval=target_update_interval,
                exploration_fraction=exploration_fraction,
                exploration_initial_eps=exploration_initial_eps,
                exploration_final_eps=exploration_final_eps,
                max_grad_norm=max_grad_norm,
                stats_window_size=stats_window_size,
                tensorboard_log=tensorboard_log,
                policy_kwargs=policy_kwargs,
                verbose=verbose,
                seed=seed,
                device=device,
                _init_setup_model=_init_setup_model,
            )
        except AssertionError as exc:
            if "action spaces" not in str(exc):
                raise
            raise ValueError(
                f"DoubleDQN needs a Discrete action space ({exc}). For continuous actions use SAC, TD3 or TQC; "
                "for MultiDiscrete ones, wrap the env so that it enumerates the action combinations."
            ) from exc

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self._n_updates == 0 and self.verbose >= 1 and not self._said_learning_starts:
            self._said_learning_starts = True
            print(f"Learning starts at num_timesteps={self.num_timesteps:,}: from now on gradient steps take turns "
                  "with the env steps, so steps/s drop")  # fmt: skip
        # Switch to train mode (this affects batch norm / dropout), when not in it already
        set_training_mode(self.policy, True)
        # Update learning rate according to schedule
        self._update_learning_rate(self.policy.optimizer)

        learner, buffer = self.learner, self.replay_buffer
        assert buffer is not None
        prioritized = buffer if isinstance(buffer, PrioritizedFrameReplayBuffer) else None
        if prioritized is not None:
            # Prioritized replay: the importance-sampling exponent rises with training progress
            prioritized.anneal(1.0 - self._current_progress_remaining)
        sampled: list[np.ndarray] = []
        td_errors: list[th.Tensor] = []
        for replay_data in learner.batches(buffer, gradient_steps, batch_size, self._vec_normalize_env):
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            # One Double-DQN gradient step (sb3_mario.ddqn.update), eager or replayed as a CUDA graph
            errors = learner.step(replay_data, discounts)
            if prioritized is not None:
                sampled.append(replay_data.indices)  # type: ignore[attr-defined]
                td_errors.append(errors)
        if prioritized is not None and sampled:
            # The sampled transitions' new priorities, from their TD errors (no wait for the GPU)
            prioritized.update_priorities(np.concatenate(sampled), th.cat(td_errors))

        # Increase update counter
        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        loss = learner.loss()  # the mean since the last read; with a CUDA graph, read every few calls
        if loss is not None:
            self.logger.record("train/loss", loss)

    @property
    def learner(self) -> Learner:
        """The gradient steps' runner (:class:`~sb3_mario.ddqn.learner.Learner`), built at the first ``train``."""
        if self._learner is None:
            self._learner = Learner(self.policy, self.max_grad_norm, self.cuda_graph, self._channels_last, self.verbose)
        return self._learner

    def learn(
        self: SelfDoubleDQN,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DoubleDQN",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDoubleDQN:
        env_id = self._env_id()
        args = (total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
        if self.failure_restarts > 0:
            self._start_failure_restarts(env_id)
        try:
            if self.overlap_env_step or self.async_envs:
                # the fast path: SB3's loop with the gradient steps taken while the envs step
                OverlappedLoop(self, self.async_envs, self.extended_exploration()).learn(*args)
                return self
            return super().learn(*args)
        except WORKER_GONE as exc:
            raise RuntimeError(
                f"An environment worker process ({env_id}) died at num_timesteps={self.num_timesteps}. "
                "Checkpoints saved so far are intact: resume from the latest one "
                "(rl-zoo: -i <run>/rl_model_<steps>_steps.zip)."
            ) from exc

    def _start_failure_restarts(self, env_id: str) -> None:
        # the training envs keep and restart from failure states from now on (evaluation envs are others)
        if self.env is None or not self.env.has_attr("set_failure_restarts"):
            raise ValueError(
                f"failure_restarts={self.failure_restarts} restarts episodes from saved emulator states, which only "
                f"Mario envs wrapped in sb3_mario.MarioWrapper do ({env_id} is not). Set failure_restarts=0, or "
                "build the envs with sb3_mario.make_mario_env (rl-zoo: env_wrapper sb3_mario.wrappers.MarioWrapper)."
            )
        self.env.env_method("set_failure_restarts", self.failure_restarts, self.failure_restart_steps)

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        # As SB3, but in place: a learning rate held as a tensor (CUDA graph) must keep its storage
        learning_rate = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            set_learning_rate(optimizer, learning_rate)

    def extended_exploration(self) -> ExtendedExploration | None:
        """The ez-greedy state of the training envs (``None`` when ``ez_greedy_mu`` is ``None``)."""
        if self.ez_greedy_mu is None:
            return None
        if self._exploration is None or self._exploration.n_envs != self.n_envs:
            n_actions = int(self.action_space.n)  # type: ignore[attr-defined]
            self._exploration = ExtendedExploration(self.n_envs, n_actions, self.ez_greedy_mu,
                                                    self.ez_greedy_max_duration)  # fmt: skip
        return self._exploration

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        # SB3's (random before learning_starts, then epsilon-greedy), or ez-greedy: the exploring envs repeat
        # their action, the others act greedily
        exploration = self.extended_exploration()
        if exploration is None or self.num_timesteps < learning_starts:
            return super()._sample_action(learning_starts, action_noise, n_envs)
        greedy = self.predict(self._last_obs, deterministic=True)[0]  # type: ignore[arg-type]
        actions = exploration.choose(np.arange(n_envs), self.exploration_rate, greedy)
        return actions, actions

    def _store_transition(self, replay_buffer: Any, buffer_action: np.ndarray, new_obs: Any, reward: np.ndarray,
                          dones: np.ndarray, infos: list[dict[str, Any]]) -> None:  # fmt: skip
        # as SB3; an episode's end also ends its env's ez-greedy repetition
        if self._exploration is not None:
            self._exploration.episodes_ended(dones)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_learner", "_said_learning_starts", "_exploration"]

    def _env_id(self) -> str:
        try:
            spec = self.env.get_attr("spec", indices=[0])[0] if self.env is not None else None
        except Exception:
            spec = None
        return spec.id if spec is not None else "unknown env"

    def _setup_model(self) -> None:
        if self.replay_buffer_class is None and isinstance(self.observation_space, spaces.Box):
            needed = replay_buffer_bytes(
                self.buffer_size, self.observation_space, self.action_space, self.optimize_memory_usage
            )
            check_replay_memory(needed, self.buffer_size)
        start = time.perf_counter()
        super()._setup_model()
        if self.verbose >= 1 and self.replay_buffer is not None:
            print(f"{describe_replay_buffer(self.replay_buffer)}; allocated in {time.perf_counter() - start:.1f} s")
        fuse_optimizer(self.policy.optimizer, self.device)
        # On a CPU, convolutions run faster on channels-last tensors (weights and batches): same math
        self._channels_last = self.device.type == "cpu" and is_image_space(self.observation_space)
        if self._channels_last:
            self.policy.to(memory_format=th.channels_last)

    def set_parameters(self, *args: Any, **kwargs: Any) -> None:
        # as SB3 (the optimizer's settings come back from the file), then fuse_optimizer as in _setup_model
        super().set_parameters(*args, **kwargs)
        fuse_optimizer(self.policy.optimizer, self.device)

    def round_to_float16(self) -> None:
        """
        Round the online Q-network's floating-point weights to the nearest float16 values, in place (they stay
        float32 tensors): its float16 copy then holds the same numbers. ``float16_checkpoints=True`` calls this
        before each save and evaluation.
        """
        weights = {k: v for k, v in self.q_net.state_dict().items() if v.is_floating_point()}
        largest = th.finfo(th.float16).max
        too_large = [k for k, v in weights.items() if not bool(v.abs().max() <= largest)]
        if too_large:
            raise ValueError(
                f"float16_checkpoints: the weights {too_large} hold values beyond float16's range (+-{largest:g}) "
                "or NaN, which rounding would turn into inf: train with float16_checkpoints=False."
            )
        with th.no_grad():
            for tensor in weights.values():
                tensor.copy_(tensor.half())

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Any = None,
        include: Any = None,
    ) -> None:
        """
        Save the model like SB3, but atomically: a crash during the save leaves the previous file intact. With
        ``float16_checkpoints``, the online Q-network's weights are first rounded to float16 values
        (:meth:`round_to_float16`).

        :param path: path to the file where the agent should be saved (``.zip`` is added if missing)
        :param exclude: names of parameters that should be excluded in addition to the default ones
        :param include: names of parameters that might be excluded but should be included anyway
        """
        if self.float16_checkpoints:
            self.round_to_float16()
        if not isinstance(path, str | pathlib.Path):
            return super().save(path, exclude=exclude, include=include)
        with atomic_write(with_suffix(path, ".zip")) as f:
            super().save(f, exclude=exclude, include=include)  # type: ignore[arg-type]

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """
        Save the replay buffer like SB3, but atomically (temporary file, then rename), and only the rows filled so
        far (:class:`~sb3_mario.buffers.FilledRows`): SB3's ``load_replay_buffer`` gives back the same buffer.

        :param path: path to the file (``.pkl`` is added if missing)
        """
        assert self.replay_buffer is not None, "The replay buffer is not defined"
        buffer = self.replay_buffer
        # a buffer not full yet: only its filled rows (loading gives back the whole buffer)
        saved = buffer if buffer.full or not isinstance(buffer, ReplayBuffer) else FilledRows(buffer)
        if not isinstance(path, str | pathlib.Path):
            return save_to_pkl(path, saved, self.verbose)
        path = with_suffix(path, ".pkl")
        with atomic_write(path) as f:
            save_to_pkl(f, saved, self.verbose)  # type: ignore[arg-type]
        if self.verbose >= 1:
            rows = buffer.buffer_size if buffer.full else buffer.pos
            capacity = buffer.buffer_size * buffer.n_envs
            print(
                f"Saved the replay buffer to {path}: {rows * buffer.n_envs:,} of {capacity:,} transitions, "
                f"{path.stat().st_size / 2**20:,.2f} MiB"
            )

    @classmethod
    def load(
        cls: type[SelfDoubleDQN],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: GymEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfDoubleDQN:
        """
        Load a DoubleDQN (or DQN) model saved with ``save``; a missing, corrupt or truncated file, or a zip
        saved by another algorithm, gets a ``ValueError`` that says what to do.

        :param path: path to the file (or a file-like) where to load the agent from
        :param env: the new environment to run the loaded model on (can be None to only predict)
        :param device: device on which the code should run
        :param custom_objects: objects to replace upon loading (see SB3's ``BaseAlgorithm.load``)
        :param print_system_info: whether to print system info from the saved model
        :param force_reset: force a reset before training, to avoid unexpected behavior
        :param kwargs: extra arguments to change the model when loading
        :return: new model instance with loaded parameters
        """
        if isinstance(path, str | pathlib.Path):
            check_model_zip(path, "ddqn")
        return super().load(
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
