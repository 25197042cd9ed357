"""The gradient steps of ``DoubleDQN.train``: batches from the replay buffer, one Double-DQN step each, the loss.

:class:`Learner` runs :func:`sb3_mario.ddqn.update.double_dqn_step` eagerly, as SB3's ``DQN.train`` runs its
update. With ``cuda_graph=True`` it replays the step as a captured CUDA graph instead
(:class:`~sb3_mario.ddqn.graph.GraphedUpdate`); on a GPU it then draws :data:`SAMPLE_CHUNK` batches per
replay-buffer call (one host-to-device copy for all of them) and reads the loss, which waits for the GPU, once every
:data:`GRAPH_LOSS_EVERY` calls. On a CPU, image batches go to the convolutions in channels-last memory order,
which PyTorch runs faster there: the same values.
"""

from collections.abc import Iterator

import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.dqn.policies import DQNPolicy

from sb3_mario.ddqn.graph import GraphedUpdate
from sb3_mario.ddqn.update import double_dqn_step

#: with cuda_graph=True, train/loss is the mean loss over this many train() calls (a host sync each time)
GRAPH_LOSS_EVERY = 50
#: with cuda_graph=True on a GPU, gradient steps draw their batches this many at a time: one replay-buffer call
#: and one host-to-device copy for all, the same distribution as one call per step (other random draws); with async
#: envs also the most gradient steps of one train() call. 8: a vec-env step's steps of the package's config in one
#: call (end to end 1.06x the speed of 4 on an H100, benchmarks/README.md)
SAMPLE_CHUNK = 8


class Learner:
    """
    Takes Double-DQN gradient steps on a policy, eagerly or as a CUDA graph, and keeps their loss.

    :param policy: the DQN policy (online ``q_net``, ``q_net_target`` and ``optimizer``)
    :param max_grad_norm: gradient clipping norm
    :param cuda_graph: replay each step as a captured CUDA graph (on a CUDA device; eager elsewhere)
    :param channels_last: feed image batches in channels-last memory order (faster convolutions on a CPU)
    :param verbose: 1: say when the CUDA graph is captured
    """

    def __init__(
        self,
        policy: DQNPolicy,
        max_grad_norm: float,
        cuda_graph: bool = False,
        channels_last: bool = False,
        verbose: int = 0,
    ) -> None:
        self.policy = policy
        self.max_grad_norm = max_grad_norm
        self.channels_last = channels_last
        self.graphed = GraphedUpdate(policy, max_grad_norm) if cuda_graph else None
        if self.graphed is not None and self.graphed.use_graph and verbose >= 1:
            print("Capturing the gradient step as a CUDA graph (once)")
        #: batches drawn per replay-buffer call: SAMPLE_CHUNK under a CUDA graph, else one (as SB3)
        self.sample_chunk = SAMPLE_CHUNK if self.graphed is not None and self.graphed.use_graph else 1
        self._losses: list[th.Tensor] = []  # eager: this call's losses
        self._calls = self._graphed_steps = 0  # graphed: train() calls and steps since the last loss read

    def batches(
        self, replay_buffer: ReplayBuffer, gradient_steps: int, batch_size: int, env: VecNormalize | None = None
    ) -> Iterator[ReplayBufferSamples]:
        """
        :param replay_buffer: where to sample from
        :param gradient_steps: how many batches
        :param batch_size: samples per batch
        :param env: the ``VecNormalize`` wrapper, if any (as SB3's ``sample``)
        :return: the batches, drawn :attr:`sample_chunk` at a time
        """
        for start in range(0, gradient_steps, self.sample_chunk):
            steps = min(self.sample_chunk, gradient_steps - start)
            drawn = replay_buffer.sample(batch_size * steps, env=env)
            for k in range(steps):
                batch = slice_samples(drawn, k * batch_size, (k + 1) * batch_size) if steps > 1 else drawn
                yield channels_last(batch) if self.channels_last else batch

    def step(self, replay_data: ReplayBufferSamples, discounts: th.Tensor | float) -> th.Tensor:
        """
        One gradient step on a batch; its loss stays on the device (no host sync).

        :param replay_data: a batch from the replay buffer (with ``weights``: a prioritized one's, whose
            importance-sampling weights scale each sample's loss)
        :param discounts: ``replay_data.discounts`` for n-step returns, else gamma
        :return: the batch's absolute TD errors, ``(batch, 1)``, on the device
        """
        weights = getattr(replay_data, "weights", None)
        if self.graphed is not None:
            td_errors = self.graphed(replay_data, discounts, weights)
            self._graphed_steps += 1
            return td_errors
        loss, td_errors = double_dqn_step(
            self.policy,
            replay_data.observations,
            replay_data.actions,
            replay_data.next_observations,
            replay_data.rewards,
            replay_data.dones,
            discounts,
            self.max_grad_norm,
            weights=weights,
        )
        self._losses.append(loss)
        return td_errors

    def loss(self) -> float | None:
        """
        :return: the mean loss of the steps since the last read (``None`` when there were none or, with a CUDA
            graph, until :data:`GRAPH_LOSS_EVERY` calls have passed: reading it waits for the GPU)
        """
        if self.graphed is None:
            losses, self._losses = self._losses, []
            return th.stack(losses).mean().item() if losses else None
        self._calls += 1
        if (self._calls - 1) % GRAPH_LOSS_EVERY or not self._graphed_steps:
            return None
        mean = (self.graphed.loss_sum / self._graphed_steps).item()
        self.graphed.loss_sum.zero_()
        self._graphed_steps = 0
        return mean


def set_training_mode(policy: DQNPolicy, mode: bool) -> None:
    """
    SB3's ``policy.set_training_mode(mode)`` (train or eval mode, for batch norm and dropout), skipped when the policy
    and its online network are in that mode already: SB3 switches before every rollout and every ``train`` call, and
    each switch walks every module of the network, a few percent of the fast path's trainer time.

    :param policy: the DQN policy
    :param mode: ``True``: train mode; ``False``: eval mode
    """
    if policy.training != mode or policy.q_net.training != mode:
        policy.set_training_mode(mode)


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
    :param samples: a batch from a replay buffer (``ReplayBufferSamples``, or another named tuple of per-sample
        fields, such as :class:`~sb3_mario.prioritized_replay.PrioritizedSamples`)
    :param start: first sample to keep
    :param stop: one past the last sample to keep
    :return: the samples ``start:stop`` of every field (views, no copy), of the same type
    """
    fields = [None if field is None else field[start:stop] for field in samples]
    return type(samples)(*fields)  # type: ignore[arg-type]
