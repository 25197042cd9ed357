"""Replay buffers: one for stacked frames that stores each frame once, the filled-rows file format, a description.

SB3's ``ReplayBuffer`` keeps every observation and next observation whole: with 4 stacked 84x84 frames that
is 56 KiB a transition (28 KiB with ``optimize_memory_usage``), ~56 GB for a million. ``FrameReplayBuffer``
keeps only the newest frame of each step (7 KiB), plus the last frame of each finished episode, and
rebuilds the stacks when it samples: a million transitions take ~6.6 GiB, and a sample equals, bit for bit,
what SB3's ``ReplayBuffer`` (``optimize_memory_usage=False``) returns for the same indices and random state.
"""

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_mario.memory import check_replay_memory, replay_buffer_bytes


class FrameReplayBuffer(ReplayBuffer):
    """
    Replay buffer for observations made by ``VecFrameStack`` (channel-first after SB3's ``VecTransposeImage``):
    ``(n_stack * frame_channels, H, W)``, oldest frame first, zero-padded after a reset.

    Drop-in for SB3's DQN and :class:`~sb3_mario.DoubleDQN`::

        DoubleDQN("CnnPolicy", make_mario_env(...), gamma=0.9, replay_buffer_class=FrameReplayBuffer,
                  replay_buffer_kwargs=dict(n_steps=3, gamma=0.9))

    How it works: the newest frame of each added observation goes to a ring of frames (one per step and env);
    the older frames of the stack are the newest frames of the previous steps of the same episode, and the
    leading all-zero frames of each observation tell how many of them are padding. The next observation
    shares all but its newest frame, which is the next step's newest frame, or, at the end of an episode,
    the terminal frame kept aside.

    :param buffer_size: Max number of transitions in the buffer
    :param observation_space: the stacked, channel-first image space
    :param action_space: Action space
    :param device: PyTorch device the samples go to
    :param n_envs: Number of parallel environments
    :param optimize_memory_usage: not needed (frames are stored once); must be False
    :param handle_timeout_termination: Handle timeout termination (due to timelimit) separately, as SB3 does
    :param frame_channels: channels of one frame (1 for grayscale, 3 for RGB)
    :param n_steps: n-step returns (as SB3's ``NStepReplayBuffer``); 1 for plain transitions
    :param gamma: discount factor for the n-step returns
    :param storage_device: also keep the frames on this torch device (e.g. ``"cuda"``) and rebuild the
        sampled stacks there: only indices cross to the GPU, not pixels. The host copy stays (for saving).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        frame_channels: int = 1,
        n_steps: int = 1,
        gamma: float = 0.99,
        storage_device: str | th.device | None = None,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError("FrameReplayBuffer already stores each frame once: use optimize_memory_usage=False.")
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 3:
            raise ValueError(f"FrameReplayBuffer needs stacked images (C, H, W), got {observation_space}.")
        channels, height, width = observation_space.shape
        if channels % frame_channels != 0:
            raise ValueError(
                f"The observation has {channels} channels, not a multiple of frame_channels={frame_channels}: pass "
                "the channel count of one frame, and make sure the frames are stacked on the first axis "
                "(VecFrameStack, then VecTransposeImage)."
            )
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.frame_channels, self.n_stack = frame_channels, channels // frame_channels
        self.n_steps, self.gamma = n_steps, gamma
        # frame slot of step g is g % capacity; n_stack extra slots keep the history of the oldest transition
        self.capacity = self.buffer_size + self.n_stack
        frame_shape = (frame_channels, height, width)
        check_replay_memory(self.estimate_bytes(buffer_size, observation_space, n_envs, frame_channels), buffer_size)
        self.frames = np.zeros((self.capacity, n_envs, *frame_shape), dtype=observation_space.dtype)
        self.actions = np.zeros(
            (self.buffer_size, n_envs, self.action_dim), dtype=self._maybe_cast_dtype(action_space.dtype)
        )
        self.rewards = np.zeros((self.buffer_size, n_envs), dtype=np.float32)
        self.dones = np.zeros((self.buffer_size, n_envs), dtype=np.float32)
        self.timeouts = np.zeros((self.buffer_size, n_envs), dtype=np.float32)
        # number of real (not padding) frames before the newest one, capped at n_stack - 1
        self.history = np.zeros((self.buffer_size, n_envs), dtype=np.uint8)
        # terminal frames of finished episodes, by (row, env)
        self.terminal_frames: dict[tuple[int, int], np.ndarray] = {}
        self.n_added = 0
        self.frames_on_device: th.Tensor | None = None
        if storage_device == "auto":
            storage_device = "cuda" if th.cuda.is_available() else None
        if storage_device is not None:
            device = th.device(storage_device)
            if device.type == "cuda":
                free, _ = th.cuda.mem_get_info(device)
                needed = self.estimate_bytes(buffer_size, observation_space, n_envs, frame_channels)
                check_replay_memory(needed, buffer_size, available=free, where=f"GPU memory ({device})")
            self.frames_on_device = th.zeros(self.frames.shape, dtype=th.uint8, device=storage_device)
            # what a 1-step sample needs besides the frames: action, reward, done * (1 - timeout)
            self.actions_on_device = th.zeros(self.actions.shape, dtype=th.long, device=storage_device)
            self.rewards_on_device = th.zeros(self.rewards.shape, dtype=th.float32, device=storage_device)
            self.final_dones_on_device = th.zeros(self.dones.shape, dtype=th.float32, device=storage_device)
            self._make_staging(th.device(storage_device))

    @staticmethod
    def estimate_bytes(
        buffer_size: int, observation_space: spaces.Space, n_envs: int = 1, frame_channels: int = 1
    ) -> int:
        """
        :param buffer_size: number of transitions
        :param observation_space: the stacked image space
        :param n_envs: number of envs
        :param frame_channels: channels of one frame
        :return: bytes the buffer fills once full (frames, actions, rewards, flags)
        """
        channels, height, width = observation_space.shape  # type: ignore[misc]
        frame = frame_channels * height * width * np.dtype(observation_space.dtype).itemsize
        rows = max(buffer_size // n_envs, 1)
        return (rows + channels // frame_channels) * n_envs * frame + rows * n_envs * (8 + 4 + 4 + 4 + 1)

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """
        Add one step of every env (arguments as SB3's ``ReplayBuffer.add``).

        :param obs: stacked observations, ``(n_envs, C, H, W)``
        :param next_obs: stacked next observations (the terminal ones where ``done``)
        :param action: actions
        :param reward: rewards
        :param done: episode ends
        :param infos: infos (``TimeLimit.truncated`` marks timeouts)
        """
        k = self.frame_channels
        frames = obs.reshape(self.n_envs, self.n_stack, k, *obs.shape[-2:])
        padding = leading_zero_frames(frames)
        row, slot = self.pos, self.n_added % self.capacity
        for e in range(self.n_envs):
            self.terminal_frames.pop((row, e), None)
        next_slot = (slot + 1) % self.capacity
        self.frames[slot] = frames[:, -1]
        self.frames[next_slot] = next_obs.reshape(self.n_envs, self.n_stack, k, *obs.shape[-2:])[:, -1]
        self.history[row] = self.n_stack - 1 - padding
        for i in np.flatnonzero(done):
            self.terminal_frames[(row, int(i))] = self.frames[(slot + 1) % self.capacity, i].copy()
        self.actions[row] = np.array(action).reshape((self.n_envs, self.action_dim))
        self.rewards[row] = np.array(reward)
        self.dones[row] = np.array(done)
        if self.handle_timeout_termination:
            self.timeouts[row] = np.array([info.get("TimeLimit.truncated", False) for info in infos])
        if self.frames_on_device is not None:
            self._mirror(row, slot, next_slot)
        self.n_added += 1
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full = True
            self.pos = 0

    def _make_staging(self, device: th.device) -> None:
        """Pinned host buffers for the copies to the device: indices, float values, frames."""
        self._staging = _Staging(device)
        self._float_staging = _Staging(device, dtype=th.float32)
        self._frame_staging = _Staging(device, dtype=th.uint8)

    def _mirror(self, row: int, slot: int, next_slot: int) -> None:
        """Copy what ``add`` wrote to the device copy, through pinned staging (no wait for the GPU)."""
        assert self.frames_on_device is not None
        frames = np.stack([self.frames[slot], self.frames[next_slot]])
        frames_t = self._frame_staging.send(frames).view(frames.shape)
        self.frames_on_device[slot], self.frames_on_device[next_slot] = frames_t[0], frames_t[1]
        self.actions_on_device[row] = self._staging.send(self.actions[row]).view(self.actions_on_device[row].shape)
        values = self._float_staging.send(np.stack([self.rewards[row], self.dones[row] * (1 - self.timeouts[row])]))
        self.rewards_on_device[row], self.final_dones_on_device[row] = values.view(2, -1)

    def __getstate__(self) -> dict[str, Any]:
        # device copies and pinned staging are rebuilt from the host arrays when loaded
        state = self.__dict__.copy()
        for key in (
            "frames_on_device",
            "actions_on_device",
            "rewards_on_device",
            "final_dones_on_device",
            "_staging",
            "_float_staging",
            "_frame_staging",
        ):
            state.pop(key, None)
        state["_storage_device"] = None if self.frames_on_device is None else str(self.frames_on_device.device)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        storage_device = state.pop("_storage_device", None)
        self.__dict__.update(state)
        self.frames_on_device = None
        if storage_device is not None:
            device = storage_device if storage_device == "cpu" or th.cuda.is_available() else "cpu"
            self.frames_on_device = th.from_numpy(self.frames).to(device)
            self.actions_on_device = th.from_numpy(self.actions.astype(np.int64)).to(device)
            self.rewards_on_device = th.from_numpy(self.rewards).to(device)
            self.final_dones_on_device = th.from_numpy(self.dones * (1 - self.timeouts)).to(device)
            self._make_staging(th.device(device))

    def _step_of(self, rows: np.ndarray) -> np.ndarray:
        """Global step number of the transition stored at each row."""
        last = self.n_added - 1
        return last - (last - rows) % self.buffer_size

    def _slots(
        self, rows: np.ndarray, envs: np.ndarray, next_rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """
        Frame slots and real-frame masks of the observations at (rows, envs), then of the next observations at
        (next_rows, envs) (default: the same rows; n-step samples take them ``n`` rows later).
        """
        next_rows = rows if next_rows is None else next_rows
        steps, next_steps = self._step_of(rows), self._step_of(next_rows)
        history = self.history[rows, envs].astype(np.int64)
        next_history = self.history[next_rows, envs].astype(np.int64)
        offsets = np.arange(-self.n_stack + 1, 1)[None]
        slots = np.concatenate([steps[:, None] + offsets, next_steps[:, None] + 1 + offsets]) % self.capacity
        real = np.concatenate(
            [offsets >= -history[:, None], offsets >= -np.minimum(next_history + 1, self.n_stack - 1)[:, None]]
        )
        return slots, real

    def observations_on_device(
        self, rows: np.ndarray, envs: np.ndarray, next_rows: np.ndarray | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """
        As :meth:`observations_at`, rebuilt from the frames kept on ``storage_device``.

        :param rows: buffer rows
        :param envs: env index of each row
        :param next_rows: rows of the next observations (default: ``rows``)
        :return: the stacked observations and next observations, as tensors on ``storage_device``
        """
        obs, next_obs, _, _ = self._gather_on_device(rows, envs, next_rows)
        return obs, next_obs

    def _gather_on_device(
        self, rows: np.ndarray, envs: np.ndarray, next_rows: np.ndarray | None = None
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, th.Tensor]:
        """
        Stacks rebuilt on the storage device (observations at ``rows``, next observations at ``next_rows``,
        default ``rows``), plus the rows and envs there; one small host-to-device copy, no wait for the GPU.
        """
        assert self.frames_on_device is not None, "FrameReplayBuffer(storage_device=...) keeps no frames on a device"
        n, k = len(rows), self.frame_channels
        next_rows = rows if next_rows is None else next_rows
        slots, real = self._slots(rows, envs, next_rows)  # (2n, n_stack): the observations, then the next ones
        m = slots.size
        done = np.flatnonzero(self.dones[next_rows, envs])  # these next observations end with a terminal frame
        packed = np.concatenate(
            [slots.ravel(), np.repeat(np.tile(envs, 2), self.n_stack), real.ravel(), rows, envs, done]
        )
        index = self._staging.send(packed)
        slot_t, env_t = index[:m].view(2 * n, -1), index[m : 2 * m].view(2 * n, -1)
        real_t, rows_t = index[2 * m : 3 * m].view(2 * n, -1), index[3 * m : 3 * m + n]
        envs_t, done_t = index[3 * m + n : 3 * m + 2 * n], index[3 * m + 2 * n :]
        frames = self.frames_on_device[slot_t, env_t] * real_t.to(th.uint8)[..., None, None, None]
        frames = frames.reshape(2, n, -1, *frames.shape[-2:])
        obs, next_obs = frames[0], frames[1]
        if len(done):
            terminal = np.stack([self.terminal_frames[(int(next_rows[i]), int(envs[i]))] for i in done])
            next_obs[done_t, -k:] = self._frame_staging.send(terminal).view(terminal.shape)
        return obs, next_obs, rows_t, envs_t

    def observations_at(
        self, rows: np.ndarray, envs: np.ndarray, next_rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """
        :param rows: buffer rows
        :param envs: env index of each row
        :param next_rows: rows of the next observations (default: ``rows``; n-step samples take them later)
        :return: the stacked observations at ``rows`` and next observations at ``next_rows`` stored there (as
            SB3's arrays would hold them)
        """
        next_rows = rows if next_rows is None else next_rows
        slots, real = self._slots(rows, envs, next_rows)
        frames = self.frames[slots, np.tile(envs, 2)[:, None]]
        frames[~real] = 0
        frames = frames.reshape(2, len(rows), -1, *frames.shape[-2:])
        obs, next_obs = frames[0], frames[1]
        for i in np.flatnonzero(self.dones[next_rows, envs]):
            next_obs[i, -self.frame_channels :] = self.terminal_frames[(int(next_rows[i]), int(envs[i]))]
        return obs, next_obs

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        # SB3's: rows drawn by sample(), then an env for each
        env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        return self.samples_at(batch_inds, env_indices, env)

    def samples_at(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None = None
    ) -> ReplayBufferSamples:
        """
        :param batch_inds: buffer rows
        :param env_indices: the env of each row
        :param env: the ``VecNormalize`` wrapper, if any
        :return: the transitions stored there (n-step ones with ``n_steps > 1``), as ``sample`` returns them
        """
        if self.n_steps > 1:
            return self._get_n_step_samples(batch_inds, env_indices, env)
        if self.frames_on_device is not None and env is None:
            return self._device_samples(batch_inds, env_indices)
        obs, next_obs = self._stacked(batch_inds, env_indices, env)
        data = (
            self.actions[batch_inds, env_indices, :],
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
        )
        actions, dones, rewards = map(self.to_torch, data)
        return ReplayBufferSamples(obs, actions, next_obs, dones, rewards)

    def _device_samples(self, rows: np.ndarray, envs: np.ndarray) -> ReplayBufferSamples:
        """A 1-step sample gathered on the storage device: only the indices cross from the host."""
        obs, next_obs, rows_t, envs_t = self._gather_on_device(rows, envs)
        samples = (
            obs,
            self.actions_on_device[rows_t, envs_t],
            next_obs,
            self.final_dones_on_device[rows_t, envs_t].reshape(-1, 1),
            self.rewards_on_device[rows_t, envs_t].reshape(-1, 1),
        )
        return ReplayBufferSamples(*(t.to(self.device) for t in samples))

    def _stacked(
        self, rows: np.ndarray, envs: np.ndarray, env: VecNormalize | None, next_rows: np.ndarray | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """Sampled observations (at ``rows``) and next observations (at ``next_rows``), on ``self.device``."""
        if self.frames_on_device is None:
            obs, next_obs = self.observations_at(rows, envs, next_rows)
            return self.to_torch(self._normalize_obs(obs, env)), self.to_torch(self._normalize_obs(next_obs, env))  # type: ignore[arg-type]
        if env is not None and env.norm_obs:
            raise ValueError(
                "FrameReplayBuffer(storage_device=...) cannot normalize observations: use VecNormalize(norm_obs=False)."
            )
        obs_t, next_obs_t = self.observations_on_device(rows, envs, next_rows)
        return obs_t.to(self.device), next_obs_t.to(self.device)

    def _get_n_step_samples(
        self, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None = None
    ) -> ReplayBufferSamples:
        # SB3's NStepReplayBuffer._get_samples, with the observations rebuilt from frames
        last_valid_index = self.pos - 1
        original_timeout_values = self.timeouts[last_valid_index].copy()
        self.timeouts[last_valid_index] = np.logical_or(
            original_timeout_values, np.logical_not(self.dones[last_valid_index])
        )
        steps = np.arange(self.n_steps).reshape(1, -1)
        indices = (batch_inds[:, None] + steps) % self.buffer_size
        rewards_seq = self._normalize_reward(self.rewards[indices, env_indices[:, None]], env)
        dones_seq = self.dones[indices, env_indices[:, None]]
        truncated_seq = self.timeouts[indices, env_indices[:, None]]
        done_or_truncated = np.logical_or(dones_seq, truncated_seq)
        done_idx = done_or_truncated.argmax(axis=1)
        done_idx = np.where(done_or_truncated.any(axis=1), done_idx, self.n_steps - 1)
        mask = np.arange(self.n_steps).reshape(1, -1) <= done_idx[:, None]
        target_q_discounts = self.gamma ** mask.sum(axis=1, keepdims=True).astype(np.float32)
        discounts = self.gamma ** np.arange(self.n_steps, dtype=np.float32).reshape(1, -1)
        n_step_returns = (rewards_seq * discounts * mask).sum(axis=1, keepdims=True)
        last_indices = (batch_inds + done_idx) % self.buffer_size
        next_dones = self.dones[last_indices, env_indices][:, None].astype(np.float32)
        next_timeouts = self.timeouts[last_indices, env_indices][:, None].astype(np.float32)
        final_dones = next_dones * (1.0 - next_timeouts)
        self.timeouts[last_valid_index] = original_timeout_values
        if self.frames_on_device is not None and env is None:
            # one gather on the storage device, one copy of the floats: no wait for the GPU
            obs, next_obs, rows_t, envs_t = self._gather_on_device(batch_inds, env_indices, last_indices)
            floats = self._float_staging.send(np.concatenate([n_step_returns, final_dones, target_q_discounts], 1))
            rewards_t, dones_t, discounts_t = floats.view(-1, 3).to(self.device).split(1, dim=1)
            actions_t = self.actions_on_device[rows_t, envs_t]
            return ReplayBufferSamples(
                observations=obs.to(self.device),
                actions=actions_t.to(self.device),
                next_observations=next_obs.to(self.device),
                dones=dones_t,
                rewards=rewards_t,
                discounts=discounts_t,
            )
        obs, next_obs = self._stacked(batch_inds, env_indices, env, last_indices)
        return ReplayBufferSamples(
            observations=obs,
            actions=self.to_torch(self.actions[batch_inds, env_indices]),
            next_observations=next_obs,
            dones=self.to_torch(final_dones),
            rewards=self.to_torch(n_step_returns),
            discounts=self.to_torch(target_q_discounts),
        )


def leading_zero_frames(frames: np.ndarray) -> np.ndarray:
    """
    Count the leading all-zero frames of each stacked observation: VecFrameStack's padding after a reset
    (a real all-black frame counted as padding rebuilds to the same zeros).

    :param frames: ``(n_envs, n_stack, ...)`` frames, oldest first
    :return: for each env, the number of leading all-zero frames, at most ``n_stack - 1``
    """
    n_envs, n_stack = frames.shape[:2]
    flat = np.ascontiguousarray(frames).reshape(n_envs, n_stack, -1)
    if flat.shape[2] % 8 == 0:
        flat = flat.view(np.uint64)  # 8 pixels per comparison
    padding = np.zeros(n_envs, dtype=np.int64)
    candidates = np.arange(n_envs)
    for j in range(n_stack - 1):  # most observations stop at the first, non-zero frame
        candidates = candidates[~flat[candidates, j].any(axis=1)]
        if len(candidates) == 0:
            break
        padding[candidates] += 1
    return padding


class _Staging:
    """
    Host-to-device copies of small arrays (indices, or ``dtype`` values) that do not wait for the GPU: pinned
    buffers used in turn, each reused only once its previous copy has finished.
    """

    def __init__(self, device: th.device, slots: int = 16, dtype: th.dtype = th.int64) -> None:
        self.device, self.dtype = device, dtype
        self.pinned = device.type == "cuda"
        self.buffers: list[th.Tensor | None] = [None] * slots
        self.events: list[th.cuda.Event | None] = [None] * slots
        self.turn = 0

    def send(self, array: np.ndarray) -> th.Tensor:
        if not self.pinned:
            return th.from_numpy(np.ascontiguousarray(array)).to(self.device, self.dtype)
        self.turn = (self.turn + 1) % len(self.buffers)
        event, buffer = self.events[self.turn], self.buffers[self.turn]
        if event is not None:
            event.synchronize()
        if buffer is None or buffer.numel() < array.size:
            buffer = self.buffers[self.turn] = th.empty(array.size, dtype=self.dtype, pin_memory=True)
        view = buffer[: array.size]
        view.numpy()[:] = array.ravel()
        sent = view.to(self.device, non_blocking=True)
        event = th.cuda.Event()
        event.record()
        self.events[self.turn] = event
        return sent


class FilledRows:
    """
    A replay buffer that is not full yet, as it is pickled by :meth:`DoubleDQN.save_replay_buffer`: only the rows
    written so far (SB3 preallocates the whole buffer, so a pickle of it is as large as the full buffer however
    few transitions it holds). Unpickling it gives back the buffer itself, of the same class, with full-size
    arrays and the same contents, so SB3's ``load_replay_buffer`` (and rl-zoo's ``--load-replay-buffer``) load
    it as before, and training goes on filling it.

    Works for SB3's ``ReplayBuffer``, ``NStepReplayBuffer`` and :class:`FrameReplayBuffer`: every array whose first
    axis holds the rows (``buffer_size`` of them, or a :class:`FrameReplayBuffer`'s frame ring) is cut after the
    rows written (those up to ``pos``, and ``pos`` itself: the next observation of the newest transition with
    ``optimize_memory_usage``, the newest frame of a :class:`FrameReplayBuffer`); rows after it were never written
    and are zeros again when loaded.

    :param buffer: a replay buffer with ``full == False``
    """

    def __init__(self, buffer: ReplayBuffer) -> None:
        if buffer.full:
            raise ValueError("FilledRows is for a replay buffer that is not full yet; pickle a full one as it is.")
        self.buffer_class: type[ReplayBuffer] = type(buffer)
        self.rows = buffer.pos + 1
        state: dict[str, Any] = dict(buffer.__getstate__())  # type: ignore[call-overload]
        row_counts = {buffer.buffer_size, getattr(buffer, "capacity", buffer.buffer_size)}
        #: per cut array, its full number of rows
        self.lengths: dict[str, int] = {}
        for key, value in state.items():
            if isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] in row_counts:
                if value.shape[0] > self.rows:
                    self.lengths[key] = value.shape[0]
                    state[key] = value[: self.rows]
        self.state = state

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return restore_filled_rows, (self.buffer_class, self.state, self.lengths)


def restore_filled_rows(
    buffer_class: type[ReplayBuffer], state: dict[str, Any], lengths: dict[str, int]
) -> ReplayBuffer:
    """
    Rebuild the replay buffer that :class:`FilledRows` pickled.

    :param buffer_class: the buffer's class
    :param state: its state, the arrays in ``lengths`` cut after the rows written
    :param lengths: the full number of rows of each cut array
    :return: the buffer, with full-size arrays (zeros after the rows written)
    """
    for key, length in lengths.items():
        rows = state[key]
        whole = np.zeros((length, *rows.shape[1:]), dtype=rows.dtype)
        whole[: len(rows)] = rows
        state[key] = whole
    buffer = buffer_class.__new__(buffer_class)
    if hasattr(buffer, "__setstate__"):
        buffer.__setstate__(state)
    else:
        buffer.__dict__.update(state)
    return buffer


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
