"""``DoubleDQN``: SB3's DQN with the Double-DQN target, checked hyperparameters, atomic saves and checked loads."""

import io
import pathlib
import time
import warnings
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.save_util import save_to_pkl
from stable_baselines3.common.type_aliases import (
    GymEnv,
    MaybeCallback,
    ReplayBufferSamples,
    Schedule,
    TrainFrequencyUnit,
)
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.dqn import DQN
from stable_baselines3.dqn.policies import CnnPolicy, DQNPolicy, MlpPolicy, MultiInputPolicy

from sb3_mario.buffers import FilledRows, FrameReplayBuffer
from sb3_mario.cnn import MarioCNN
from sb3_mario.ddqn.acting import ActingCopy
from sb3_mario.ddqn.actors import AsyncEnvs, StepResult, async_layers
from sb3_mario.ddqn.graph import GraphedUpdate, set_learning_rate
from sb3_mario.ddqn.overlap import OverlapVecEnv
from sb3_mario.ddqn.update import double_dqn_step
from sb3_mario.files import atomic_write, check_model_zip, with_suffix
from sb3_mario.memory import check_replay_memory, replay_buffer_bytes

SelfDoubleDQN = TypeVar("SelfDoubleDQN", bound="DoubleDQN")
#: with cuda_graph=True, train/loss is the mean loss over this many train() calls (a host sync each time)
GRAPH_LOSS_EVERY = 50
#: with cuda_graph=True on a GPU, gradient steps draw their batches this many at a time: one replay-buffer call
#: and one host-to-device copy for all, the same distribution as one call per step (other random draws)
SAMPLE_CHUNK = 4


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
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
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
    ) -> None:
        self.cuda_graph = cuda_graph
        self.overlap_env_step = overlap_env_step
        self.async_envs = async_envs
        self._taking_pending = False  # True while the deferred gradient steps run
        self._channels_last = False  # set by _setup_model
        self._graphed: GraphedUpdate | None = None
        self._acting: ActingCopy | None = None  # async_envs on a GPU: set during learn
        self._graphed_calls = self._graphed_steps = 0  # train() calls and gradient steps since the last loss read
        self._pending_gradient_steps = self._pending_batch_size = 0  # overlap_env_step: steps to take next
        self._learn_start = 0  # num_timesteps when the current learn() began
        self._said_learning_starts = False
        check_hyperparameters(
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
        if isinstance(self.env, OverlapVecEnv | AsyncEnvs) and not self._taking_pending:
            # Run them while the envs take their next step
            self._pending_gradient_steps += gradient_steps
            self._pending_batch_size = batch_size
            return
        if self.cuda_graph:
            return self._train_graphed(gradient_steps, batch_size)
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update learning rate according to schedule
        self._update_learning_rate(self.policy.optimizer)

        losses = []
        for _ in range(gradient_steps):
            # Sample replay buffer
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            replay_data = channels_last(replay_data) if self._channels_last else replay_data
            # For n-step replay, discount factor is gamma**n_steps (when no early termination)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma

            # One Double-DQN gradient step (sb3_mario.ddqn.update); the loss stays on the device: no host sync
            loss = double_dqn_step(
                self.policy,
                replay_data.observations,
                replay_data.actions,
                replay_data.next_observations,
                replay_data.rewards,
                replay_data.dones,
                discounts,
                self.max_grad_norm,
            )
            losses.append(loss)

        # Increase update counter
        self._n_updates += gradient_steps

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if losses:
            self.logger.record("train/loss", th.stack(losses).mean().item())

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
        given_env = self.env
        self._wrap_training_env()
        actors = self.env if isinstance(self.env, AsyncEnvs) else None
        if actors is not None:
            actors.act = self._explore
            if self.cuda_graph and self.device.type == "cuda" and isinstance(self.observation_space, spaces.Box):
                self._acting = ActingCopy(self.policy)  # greedy actions as CUDA graphs, waiting for no update
        try:
            super().learn(
                total_timesteps=total_timesteps,
                callback=callback,
                log_interval=log_interval,
                tb_log_name=tb_log_name,
                reset_num_timesteps=reset_num_timesteps,
                progress_bar=progress_bar,
            )
            if actors is not None:
                if actors.unstored_row is not None:
                    # a callback stopped learn: SB3 counted that step but did not store it; stored here, before
                    # the steps in flight, so that the replay rows stay consecutive
                    self._store_step(actors.unstored_row, count=False)
                for step in actors.drain():
                    self._store_step(step)
            self._take_pending_gradient_steps()
            return self
        except (EOFError, BrokenPipeError, ConnectionResetError) as exc:
            # what SubprocVecEnv raises when a worker process is gone
            raise RuntimeError(
                f"An environment worker process ({env_id}) died at num_timesteps={self.num_timesteps}. "
                "Checkpoints saved so far are intact: resume from the latest one "
                "(rl-zoo: -i <run>/rl_model_<steps>_steps.zip)."
            ) from exc
        except BaseException:
            if actors is not None:
                actors.settle()  # a callback's error, Ctrl-C: the workers are alive, their steps come back first
            raise
        finally:
            if actors is not None:
                actors.abandon()  # nothing in flight after a drain; after an error, its workers may be gone
                actors.act = None
                self._acting = None
            # outside learn the model's env is the one it was given, and train() trains at once
            self.env = given_env
            self._pending_gradient_steps = 0

    def _setup_learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        total, callback = super()._setup_learn(total_timesteps, *args, **kwargs)
        self._learn_start = self.num_timesteps
        return total, callback

    def _rows_left(self) -> int | None:
        # vec-env steps that SB3's learn loop will still take, the one being collected included: whole rollouts
        # of train_freq steps while num_timesteps < total. None when train_freq counts episodes (not known).
        if self.train_freq.unit != TrainFrequencyUnit.STEP:  # type: ignore[union-attr]
            return None
        freq = self.train_freq.frequency  # type: ignore[union-attr]
        rows_needed = -(-(self._total_timesteps - self._learn_start) // self.n_envs)
        rows_taken = (self.num_timesteps - self._learn_start) // self.n_envs
        return -(-rows_needed // freq) * freq - rows_taken

    def get_env(self) -> VecEnv | None:
        """
        :return: the training VecEnv, as given (the fast paths' own wrapper left out: callbacks such as SB3's
            ``EvalCallback`` see the same type of env as their eval env); ``None`` if there is none
        """
        env = self.env
        return env.venv if isinstance(env, OverlapVecEnv | AsyncEnvs) else env

    def _wrap_training_env(self) -> None:
        # the fast paths wrap the training VecEnv once; they take the gradient steps while the envs step
        if self.env is None or isinstance(self.env, OverlapVecEnv | AsyncEnvs):
            return
        if self.async_envs:
            if async_layers(self.env) is not None:
                self.env = AsyncEnvs(
                    self.env,
                    lambda: self._take_pending_gradient_steps(limit=SAMPLE_CHUNK),
                    nice_workers=self.device.type == "cuda",
                    rows_left=self._rows_left,
                )
                return
            warnings.warn(
                "async_envs=True needs envs in subprocesses (rl-zoo: --vec-env subproc; Python: "
                "make_mario_env(..., vec_env_cls='subproc')), with at most VecFrameStack and VecTransposeImage "
                f"around them; this env is {describe_vec_env(self.env)}, so all envs step together and the "
                "gradient steps run while they step (overlap_env_step).",
                stacklevel=3,
            )
        if self.overlap_env_step or self.async_envs:
            self.env = OverlapVecEnv(self.env, self._take_pending_gradient_steps)

    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        sent = self.env.in_flight if isinstance(self.env, AsyncEnvs) else None
        if sent is not None:
            # async envs: the actions of this step were picked and sent env by env
            return sent, sent
        return super()._sample_action(learning_starts, action_noise, n_envs)

    def _explore(self, observations: np.ndarray) -> np.ndarray:
        # SB3's _sample_action for one group of envs: random before learning_starts, then epsilon-greedy
        if self.num_timesteps >= self.learning_starts:
            if self._acting is None:
                return self.predict(observations, deterministic=False)[0]
            # as DQN.predict: greedy actions (from the copy) unless exploring, with probability exploration_rate
            if np.random.rand() >= self.exploration_rate:
                return self._acting(observations)
        return np.array([self.action_space.sample() for _ in range(len(observations))])

    def _store_step(self, step: StepResult, count: bool = True) -> None:
        # a vec-env step collected after learn's loop ended: stored (and counted, unless SB3 did) like the others
        if self.replay_buffer is None:
            return
        actions, new_obs, rewards, dones, infos = step
        self.num_timesteps += len(actions) if count else 0
        self._update_info_buffer(infos, dones)
        self._store_transition(self.replay_buffer, actions, new_obs, rewards, dones, infos)
        self._update_current_progress_remaining(self.num_timesteps, self._total_timesteps)
        self._on_step()
        self._episode_num += int(np.sum(dones))

    def _store_transition(self, replay_buffer: ReplayBuffer, *args: Any, **kwargs: Any) -> None:
        super()._store_transition(replay_buffer, *args, **kwargs)
        if isinstance(self.env, AsyncEnvs):
            self.env.unstored_row = None

    def _take_pending_gradient_steps(self, limit: int | None = None) -> bool:
        # the gradient steps that train() deferred (all of them, or at most limit); False if there were none
        steps = self._pending_gradient_steps if limit is None else min(limit, self._pending_gradient_steps)
        self._pending_gradient_steps -= steps
        if steps > 0:
            self._taking_pending = True
            try:
                self.train(steps, self._pending_batch_size)
            finally:
                self._taking_pending = False
            if self._acting is not None:
                self._acting.refresh()
        return steps > 0

    def _train_graphed(self, gradient_steps: int, batch_size: int) -> None:
        # Same update as train(), as one CUDA graph per gradient step (eager on CPU)
        self.policy.set_training_mode(True)
        self._update_learning_rate(self.policy.optimizer)
        if self._graphed is None:
            self._graphed = GraphedUpdate(self.policy, self.max_grad_norm)
            if self.verbose >= 1 and self._graphed.use_graph:
                print("Capturing the gradient step as a CUDA graph (once)")
        chunk = self._sample_chunk()
        for start in range(0, gradient_steps, chunk):
            steps = min(chunk, gradient_steps - start)
            # the batches of the next `steps` gradient steps, drawn together
            replay_data = self.replay_buffer.sample(batch_size * steps, env=self._vec_normalize_env)  # type: ignore[union-attr]
            for k in range(steps):
                batch = slice_samples(replay_data, k * batch_size, (k + 1) * batch_size)
                batch = channels_last(batch) if self._channels_last else batch
                discounts = batch.discounts if batch.discounts is not None else self.gamma
                self._graphed(batch, discounts)
        self._n_updates += gradient_steps
        self._graphed_steps += gradient_steps
        self._graphed_calls += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if (self._graphed_calls - 1) % GRAPH_LOSS_EVERY == 0:
            # reading the loss waits for the GPU: do it once every GRAPH_LOSS_EVERY calls, for all their steps
            self.logger.record("train/loss", (self._graphed.loss_sum / max(self._graphed_steps, 1)).item())
            self._graphed.loss_sum.zero_()
            self._graphed_steps = 0

    def _sample_chunk(self) -> int:
        # batches drawn per replay-buffer call: SAMPLE_CHUNK under a CUDA graph, else one (as SB3)
        return SAMPLE_CHUNK if self._graphed is not None and self._graphed.use_graph else 1

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer) -> None:
        # As SB3, but in place: a learning rate held as a tensor (CUDA graph) must keep its storage
        learning_rate = self.lr_schedule(self._current_progress_remaining)
        self.logger.record("train/learning_rate", learning_rate)
        for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:
            set_learning_rate(optimizer, learning_rate)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_graphed", "_acting", "_said_learning_starts"]

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

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Any = None,
        include: Any = None,
    ) -> None:
        """
        Save the model like SB3, but atomically: a crash during the save leaves the previous file intact.

        :param path: path to the file where the agent should be saved (``.zip`` is added if missing)
        :param exclude: names of parameters that should be excluded in addition to the default ones
        :param include: names of parameters that might be excluded but should be included anyway
        """
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


def describe_replay_buffer(buffer: ReplayBuffer) -> str:
    """
    :param buffer: a replay buffer, just allocated
    :return: one line with its class, size, the memory it fills once full and where its samples are gathered
    """
    transitions = buffer.buffer_size * buffer.n_envs
    if isinstance(buffer, FrameReplayBuffer):
        needed = buffer.estimate_bytes(transitions, buffer.observation_space, buffer.n_envs, buffer.frame_channels)
        where = f"kept on {buffer.frames_on_device.device} too" if buffer.frames_on_device is not None else "RAM"
    else:
        needed = replay_buffer_bytes(
            transitions, buffer.observation_space, buffer.action_space, buffer.optimize_memory_usage
        )
        where = "RAM"
    size = f"{transitions:,} transitions, {needed / 2**30:.2f} GiB once full"
    return f"Replay buffer: {type(buffer).__name__}, {size} ({where})"


def fuse_optimizer(optimizer: th.optim.Optimizer, device: th.device) -> None:
    """
    Let Adam (SB3's default) and AdamW update every parameter in one fused kernel on CPU and CUDA devices, when
    the user chose no implementation (``fused`` and ``foreach`` unset): the same algorithm, rounded differently.
    On a CPU, PyTorch would otherwise loop over the tensors one by one (docs/speed.md: the CPU learner rows).

    :param optimizer: the policy's optimizer
    :param device: the device its parameters are on
    """
    if device.type not in ("cpu", "cuda") or not isinstance(optimizer, th.optim.Adam | th.optim.AdamW):
        return
    for group in optimizer.param_groups:
        if group.get("fused") is None and group.get("foreach") is None and not group.get("differentiable"):
            group["fused"] = True


def channels_last(samples: ReplayBufferSamples) -> ReplayBufferSamples:
    """
    :param samples: a batch from a replay buffer, with image observations ``(batch, C, H, W)``
    :return: the same batch with its observations in channels-last memory order (same values)
    """
    return samples._replace(
        observations=samples.observations.contiguous(memory_format=th.channels_last),
        next_observations=samples.next_observations.contiguous(memory_format=th.channels_last),
    )


def slice_samples(samples: ReplayBufferSamples, start: int, stop: int) -> ReplayBufferSamples:
    """
    :param samples: a batch from a replay buffer
    :param start: first sample to keep
    :param stop: one past the last sample to keep
    :return: the samples ``start:stop`` of every field (views, no copy)
    """
    fields = [None if field is None else field[start:stop] for field in samples]
    return ReplayBufferSamples(*fields)  # type: ignore[arg-type]


#: the hyperparameters that :func:`check_hyperparameters` checks: (what they must be, the test)
HYPERPARAMETER_RULES: dict[str, tuple[str, Any]] = {
    "buffer_size": ("an integer >= 1", lambda v: v >= 1),
    "learning_starts": ("an integer >= 0", lambda v: v >= 0),
    "batch_size": ("an integer >= 1", lambda v: v >= 1),
    "tau": ("in (0, 1]", lambda v: 0 < v <= 1),
    "gamma": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "gradient_steps": ("-1 or an integer >= 0", lambda v: v == -1 or v >= 0),
    "n_steps": ("an integer >= 1", lambda v: v >= 1),
    "target_update_interval": ("an integer >= 1", lambda v: v >= 1),
    "exploration_fraction": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "exploration_initial_eps": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "exploration_final_eps": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "max_grad_norm": ("> 0", lambda v: v > 0),
}


def check_hyperparameters(**values: Any) -> None:
    """
    Raise a ``ValueError`` naming each hyperparameter that is out of range, and the range it must be in.

    :param values: hyperparameter names and values, as passed to :class:`DoubleDQN` (those in
        :data:`HYPERPARAMETER_RULES`)
    """
    problems = []
    for name, value in values.items():
        expected, ok = HYPERPARAMETER_RULES[name]
        if not isinstance(value, int | float | np.integer | np.floating) or not ok(value):
            problems.append(f"{name}={value!r} (must be {expected})")
    if values.get("buffer_size", 1) < values.get("batch_size", 0) and not problems:
        problems.append(
            f"batch_size={values['batch_size']} is larger than buffer_size={values['buffer_size']} "
            "(the replay buffer must hold at least one batch)"
        )
    if problems:
        raise ValueError("Invalid DoubleDQN hyperparameters: " + "; ".join(problems) + ".")
