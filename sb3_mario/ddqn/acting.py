"""Greedy actions from a copy of the online network, as CUDA graphs on a stream of their own.

With ``async_envs`` on a GPU the trainer picks actions for a few workers at a time, between gradient steps,
while those workers idle. Through ``policy.predict`` each of those forward passes costs a pinned copy, a dozen
kernel launches and a host sync, and it is queued on the stream that replays the captured updates, so reading
its result also waits for every update queued before it. :class:`ActingCopy` removes both waits:

- it keeps two copies of the online Q-network and runs the forward pass on a high-priority stream of its own,
  from the newest copy whose copying has finished: it waits for no update. After each batch of gradient
  steps :meth:`ActingCopy.refresh` queues a copy of the online weights into the older copy, on the updates'
  stream, after the last forward pass that read it. An action is therefore picked by the weights of a
  finished gradient step: those after the newest batch of steps, or the batch before when its copy is still
  queued behind the updates;
- the forward pass and the argmax are replayed as one CUDA graph per copy and batch size (captured on first
  use), fed from pinned host memory allocated once.
"""

import copy

import numpy as np
import torch as th
from stable_baselines3.dqn.policies import DQNPolicy

#: weight copies: one being refreshed behind the updates while the other one acts
N_COPIES = 2
#: graph warm-up passes before a capture
WARMUP_PASSES = 2


class ActingCopy:
    """
    Greedy actions of the online Q-network of a policy on a CUDA device, from copies of its weights
    (see the module).

    :param policy: the DQN policy whose ``q_net`` is copied; on a CUDA device, with Box observations
    """

    def __init__(self, policy: DQNPolicy) -> None:
        if policy.device.type != "cuda":
            raise ValueError(f"ActingCopy runs on a CUDA device; the policy is on {policy.device}.")
        self.policy = policy
        self.device = policy.device
        self.copies = [copy.deepcopy(policy.q_net).requires_grad_(False).eval() for _ in range(N_COPIES)]
        self.stream = th.cuda.Stream(self.device, priority=-1)  # -1: high priority
        # per copy: where the copy of the weights into it finishes, and where the last forward pass from it ends;
        # recorded again each time (events never recorded are passed at once: wait_event, query and synchronize
        # do not wait on them)
        self.written = [th.cuda.Event() for _ in range(N_COPIES)]
        self.read = [th.cuda.Event() for _ in range(N_COPIES)]
        self.newest = 0
        #: per (copy, batch size): the captured forward pass, its input and its actions
        self.graphs: dict[tuple[int, int], tuple[th.cuda.CUDAGraph, th.Tensor, th.Tensor]] = {}
        #: per batch size: pinned host buffers for the observations and the actions
        self.pinned: dict[int, tuple[th.Tensor, th.Tensor]] = {}
        for _ in range(N_COPIES):
            self.refresh()

    def refresh(self) -> None:
        """Queue a copy of the online weights into the older copy, after the gradient steps queued so far."""
        k = (self.newest + 1) % N_COPIES
        stream = th.cuda.current_stream(self.device)
        stream.wait_event(self.read[k])  # a forward pass may still read this copy
        source = [*self.policy.q_net.parameters(), *self.policy.q_net.buffers()]
        target = [*self.copies[k].parameters(), *self.copies[k].buffers()]
        with th.no_grad():
            th._foreach_copy_(target, source)
        self.written[k].record(stream)
        self.newest = k

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        """
        :param observations: a batch of observations, as the VecEnv returns them
        :return: the greedy action of each
        """
        k = self.newest
        if not self.written[k].query():
            k = (k + 1) % N_COPIES  # the newest copy is still queued behind the updates: the one before it
        written = self.written[k]
        n = len(observations)
        if n not in self.pinned:
            host_input = th.empty(observations.shape, dtype=th.from_numpy(observations[:0]).dtype).pin_memory()
            self.pinned[n] = (host_input, th.empty(n, dtype=th.int64).pin_memory())
        if (k, n) not in self.graphs:
            self.graphs[(k, n)] = self._capture(k, observations)
        graph, graph_input, graph_actions = self.graphs[(k, n)]
        host_input, host_actions = self.pinned[n]
        host_input.numpy()[...] = observations
        with th.cuda.stream(self.stream):
            self.stream.wait_event(written)  # usually finished long ago
            graph_input.copy_(host_input, non_blocking=True)
            graph.replay()
            host_actions.copy_(graph_actions, non_blocking=True)
            self.read[k].record(self.stream)
        self.read[k].synchronize()  # waits for this stream only
        return host_actions.numpy().copy()

    def _capture(self, k: int, observations: np.ndarray) -> tuple[th.cuda.CUDAGraph, th.Tensor, th.Tensor]:
        # the forward pass and argmax of copy k on a batch shaped like observations, as a CUDA graph
        graph_input = th.as_tensor(observations, device=self.device)
        self.stream.wait_stream(th.cuda.current_stream(self.device))
        with th.cuda.stream(self.stream), th.no_grad():
            for _ in range(WARMUP_PASSES):
                self.copies[k](graph_input).argmax(dim=1)
        graph = th.cuda.CUDAGraph()
        with th.no_grad(), th.cuda.graph(graph, stream=self.stream):
            graph_actions = self.copies[k](graph_input).argmax(dim=1)
        return graph, graph_input, graph_actions
