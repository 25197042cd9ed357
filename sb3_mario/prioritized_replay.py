"""Prioritized experience replay (Schaul, Quan, Antonoglou & Silver, ICLR 2016, proportional variant) on
:class:`~sb3_mario.FrameReplayBuffer`.

Each stored transition i (a row and an env) has a priority ``p_i = (|delta_i| + eps) ** alpha``, where
``delta_i`` is its last TD error; a new transition gets the largest priority seen so far, so that it is replayed
at least once. A batch draws transition i with probability ``P(i) = p_i / sum_k p_k`` and scales its loss by the
importance-sampling weight ``w_i = (N * P(i)) ** -beta / max_k w_k`` (N transitions stored), with ``beta`` rising
linearly to 1 over training. Sums and minimums of the priorities live in two segment trees (:class:`SegmentTree`),
so drawing a batch and updating its priorities take O(batch * log N), in vectorized NumPy.

:class:`~sb3_mario.DoubleDQN` weights its loss and sends the new TD errors back
(:meth:`PrioritizedFrameReplayBuffer.update_priorities`); SB3's own ``DQN`` would draw prioritized batches but
neither weight them nor update their priorities. The new priorities take effect ``priority_lag`` train calls later
(4 by default), as in distributed prioritized replay (Horgan et al., ICLR 2018), on every device alike: by then a
GPU has as a rule finished computing the errors, so the trainer does not wait for its latest gradient steps.
"""

from collections import deque
from typing import Any, NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.vec_env import VecNormalize

from sb3_mario.buffers import FrameReplayBuffer


class PrioritizedSamples(NamedTuple):
    """A batch of a :class:`PrioritizedFrameReplayBuffer`: SB3's ``ReplayBufferSamples`` fields, in their order,
    plus the importance-sampling weights and where the transitions are stored."""

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    #: importance-sampling weights, ``(batch, 1)``, on the samples' device
    weights: th.Tensor
    #: the transitions' flat indices (``row * n_envs + env``), for ``update_priorities``
    indices: np.ndarray


class SegmentTree:
    """
    A complete binary tree over ``size`` leaves whose every node holds ``op`` of its two children: the sum (or
    minimum) of any prefix in O(log size), and vectorized updates and prefix-sum searches.

    :param size: number of leaves
    :param op: ``np.add`` (a sum tree) or ``np.minimum`` (a min tree)
    :param neutral: the value of an empty leaf (0 for a sum, +inf for a minimum)
    """

    def __init__(self, size: int, op: np.ufunc, neutral: float) -> None:
        self.op = op
        self.leaves = 1 << max(size - 1, 1).bit_length()  # a power of two >= size
        self.nodes = np.full(2 * self.leaves, neutral, dtype=np.float64)

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """
        :param indices: leaves to set (repeats: the last value wins)
        :param values: their new values
        """
        SegmentTree.update_together([self], indices, values)

    @staticmethod
    def update_together(trees: list["SegmentTree"], indices: np.ndarray, values: np.ndarray) -> None:
        """
        Set the same leaves of trees of one size to the same values, walking up their parents once for all.

        :param trees: the trees (same number of leaves)
        :param indices: leaves to set (repeats: the last value wins)
        :param values: their new values
        """
        nodes = np.asarray(indices, dtype=np.int64) + trees[0].leaves
        for tree in trees:
            tree.nodes[nodes] = values
        while nodes[0] > 1:  # the leaves are all one level deep, so is each level of their parents
            nodes //= 2  # a repeated parent gets the same value twice
            left = 2 * nodes
            right = left + 1
            for tree in trees:
                tree.nodes[nodes] = tree.op(tree.nodes[left], tree.nodes[right])

    def root(self) -> float:
        """:return: ``op`` over every leaf (the total of a sum tree, the minimum of a min tree)"""
        return float(self.nodes[1])

    def values(self, indices: np.ndarray) -> np.ndarray:
        """:param indices: leaves; :return: their values"""
        return self.nodes[np.asarray(indices, dtype=np.int64) + self.leaves]

    def find_prefix_sum(self, targets: np.ndarray) -> np.ndarray:
        """
        For a sum tree of non-negative values: for each target t in [0, total), the leaf i with
        ``sum(leaves[:i]) <= t < sum(leaves[:i + 1])``.

        :param targets: prefix sums
        :return: the leaves they fall in
        """
        nodes = np.ones(len(targets), dtype=np.int64)
        remaining = np.asarray(targets, dtype=np.float64).copy()
        while nodes[0] < self.leaves:  # every node of a level descends at once
            left = self.nodes[2 * nodes]
            right = remaining >= left
            remaining -= left * right
            nodes = 2 * nodes + right
        return nodes - self.leaves


class PrioritizedFrameReplayBuffer(FrameReplayBuffer):
    """
    :class:`~sb3_mario.FrameReplayBuffer` with proportional prioritized replay: use it with
    :class:`~sb3_mario.DoubleDQN`, which weights each sample's loss and updates its priority::

        DoubleDQN("CnnPolicy", env, gamma=0.9, replay_buffer_class=PrioritizedFrameReplayBuffer,
                  replay_buffer_kwargs=dict(n_steps=3, gamma=0.9, alpha=0.6, beta=0.4))

    :param args: :class:`~sb3_mario.FrameReplayBuffer`'s (``buffer_size``, ``observation_space``, ``action_space``,
        ...)
    :param alpha: how much the TD errors shape the sampling (0: uniform, as ``FrameReplayBuffer``)
    :param beta: the importance-sampling exponent at the start of training; it rises linearly to ``beta_final``
        (:meth:`anneal`)
    :param beta_final: the exponent at the end of training (1: full correction of the sampling bias)
    :param epsilon: added to every |TD error|, so that no transition's priority is 0
    :param priority_lag: how many later :meth:`update_priorities` calls (one a ``train`` call) pass before the
        priorities of a call take effect (0: at once; on a GPU that waits for its gradient steps to finish)
    :param kwargs: :class:`~sb3_mario.FrameReplayBuffer`'s keyword arguments (``n_envs``, ``n_steps``, ``gamma``,
        ``storage_device``, ...)
    """

    def __init__(
        self,
        *args: Any,
        alpha: float = 0.6,
        beta: float = 0.4,
        beta_final: float = 1.0,
        epsilon: float = 1e-6,
        priority_lag: int = 4,
        **kwargs: Any,
    ) -> None:
        for name, value in (("alpha", alpha), ("beta", beta), ("beta_final", beta_final)):
            if not 0 <= value <= 1:
                raise ValueError(f"PrioritizedFrameReplayBuffer: {name} must be in [0, 1], got {value}.")
        if not epsilon > 0:
            raise ValueError(f"PrioritizedFrameReplayBuffer: epsilon must be > 0 (no priority may be 0): {epsilon}.")
        if priority_lag < 0:
            raise ValueError(f"PrioritizedFrameReplayBuffer: priority_lag must be >= 0 (train calls): {priority_lag}.")
        super().__init__(*args, **kwargs)
        self.alpha, self.beta_initial, self.beta_final, self.epsilon = alpha, beta, beta_final, epsilon
        self.priority_lag = priority_lag
        self.beta = beta
        self.sums = SegmentTree(self.buffer_size * self.n_envs, np.add, 0.0)
        self.minimums = SegmentTree(self.buffer_size * self.n_envs, np.minimum, np.inf)
        #: the largest |TD error| + epsilon seen so far: a new transition's (before alpha)
        self.max_error = 1.0
        #: TD errors not applied yet, oldest first: (indices, host copy, the copy's CUDA event or None, its pinned
        #: buffer or None)
        self._pending: deque[tuple[np.ndarray, th.Tensor, th.cuda.Event | None, th.Tensor | None]] = deque()
        #: pinned host buffers free for the next copy from a GPU
        self._free_pinned: list[th.Tensor] = []

    def add(self, *args: Any, **kwargs: Any) -> None:
        """As :meth:`FrameReplayBuffer.add`; the new transitions get the largest priority so far."""
        row = self.pos
        super().add(*args, **kwargs)
        self._set_priorities(
            row * self.n_envs + np.arange(self.n_envs), np.full(self.n_envs, self.max_error**self.alpha)
        )

    def _set_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        SegmentTree.update_together([self.sums, self.minimums], indices, priorities)

    def anneal(self, progress: float) -> None:
        """
        :param progress: the fraction of training done (0 to 1): ``beta`` goes linearly from its initial value
            to ``beta_final``
        """
        self.beta = self.beta_initial + (self.beta_final - self.beta_initial) * min(max(progress, 0.0), 1.0)

    def probabilities(self, indices: np.ndarray) -> np.ndarray:
        """
        :param indices: flat transition indices
        :return: the probability of drawing each in one draw, by the priorities in effect (not the pending ones)
        """
        return self.sums.values(indices) / self.sums.root()

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> PrioritizedSamples:  # type: ignore[override]
        """
        :param batch_size: number of transitions, each drawn with probability proportional to its priority
        :param env: the ``VecNormalize`` wrapper, if any
        :return: the transitions (as :class:`~sb3_mario.FrameReplayBuffer` returns them), their importance-sampling
            weights and indices
        """
        total = self.sums.root()
        targets = np.random.uniform(0.0, total, size=batch_size)
        indices = self.sums.find_prefix_sum(np.minimum(targets, np.nextafter(total, 0.0)))
        stored = (self.buffer_size if self.full else self.pos) * self.n_envs
        indices = np.minimum(indices, stored - 1)  # rounding can step past the last stored transition
        probabilities = self.sums.values(indices) / total
        # w_i = (N P(i))^-beta, over the largest weight, that of the lowest priority
        weights = (probabilities / (self.minimums.root() / total)) ** -self.beta
        rows, envs = np.divmod(indices, self.n_envs)
        samples = self.samples_at(rows, envs, env)
        if self.frames_on_device is not None and env is None:
            weights_t = self._float_staging.send(weights.astype(np.float32)).view(-1, 1).to(self.device)
        else:
            weights_t = self.to_torch(weights.astype(np.float32).reshape(-1, 1))
        return PrioritizedSamples(*samples, weights=weights_t, indices=indices)

    def update_priorities(self, indices: np.ndarray, td_errors: th.Tensor) -> None:
        """
        Set the priorities of sampled transitions from their new TD errors, ``priority_lag`` calls from now. Errors
        on a GPU are copied to the host without waiting for it; then the errors of ``priority_lag`` calls ago are
        applied (waiting, at most, for a copy queued that long ago).

        :param indices: flat transition indices (:attr:`PrioritizedSamples.indices`)
        :param td_errors: their absolute TD errors, any shape with ``len(indices)`` elements, on any device
        """
        errors = td_errors.detach().reshape(-1).float()
        if errors.device.type == "cuda":
            pinned = next((b for b in self._free_pinned if b.numel() >= errors.numel()), None)
            if pinned is None:
                pinned = th.empty(errors.numel(), dtype=th.float32, pin_memory=True)
            else:
                self._free_pinned.remove(pinned)
            host = pinned[: errors.numel()]
            host.copy_(errors, non_blocking=True)
            event = th.cuda.Event()
            event.record()
            self._pending.append((np.asarray(indices), host, event, pinned))
        else:
            self._pending.append((np.asarray(indices), errors.cpu().clone(), None, None))
        while len(self._pending) > self.priority_lag:
            self._apply_oldest()

    def flush_priorities(self) -> None:
        """Apply every pending TD error now (waiting for their copies from the GPU, if any)."""
        while self._pending:
            self._apply_oldest()

    def _apply_oldest(self) -> None:
        """Priorities ``(|TD error| + epsilon) ** alpha`` from the oldest pending errors; the largest error so far."""
        indices, errors, event, pinned = self._pending.popleft()
        if event is not None:
            event.synchronize()
        raw = errors.numpy().astype(np.float64) + self.epsilon
        if pinned is not None:
            self._free_pinned.append(pinned)  # raw is a copy: the buffer may take the next errors
        self.max_error = max(self.max_error, float(raw.max()))
        self._set_priorities(indices, raw**self.alpha)

    def __getstate__(self) -> dict[str, Any]:
        # the pending errors are saved as plain host tensors, still pending; CUDA events and pinned memory are not
        state = super().__getstate__()
        pending: deque[tuple[np.ndarray, th.Tensor, None, None]] = deque()
        for indices, errors, event, _ in self._pending:
            if event is not None:
                event.synchronize()
            pending.append((indices, errors.clone(), None, None))
        state["_pending"], state["_free_pinned"] = pending, []
        return state
