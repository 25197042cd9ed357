"""The Double-DQN gradient step as one CUDA graph: the fast learner behind ``DoubleDQN(cuda_graph=True)``.

An eager PyTorch update of a small CNN at batch 32 is bound by Python and kernel-launch overhead, not by the
GPU (SB3's ``DQN.train``: ~4 ms an update on an H100). Captured once as a CUDA graph, the whole step
(both forward passes, the Double-DQN target, Huber loss, backward, gradient clipping and Adam) replays with
one launch. The batch is copied into fixed input tensors first, so any SB3 replay buffer can feed it.

The step itself is :func:`sb3_mario.ddqn.update.double_dqn_step`, the function that
:class:`~sb3_mario.ddqn.learner.Learner` runs eagerly. On a CPU device the same step runs eagerly here too (tested
equal to ``DoubleDQN.train`` without ``cuda_graph``).
"""

from typing import Any

import torch as th
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.dqn.policies import DQNPolicy

from sb3_mario.ddqn.update import double_dqn_step

WARMUP_STEPS = 3


class GraphedUpdate:
    """
    One Double-DQN gradient step on fixed input tensors, captured as a CUDA graph on CUDA devices.

    :param policy: the DQN policy (online ``q_net``, ``q_net_target`` and ``optimizer``)
    :param max_grad_norm: gradient clipping norm
    :param use_graph: capture and replay a CUDA graph (needs a CUDA device)
    """

    def __init__(self, policy: DQNPolicy, max_grad_norm: float, use_graph: bool = True) -> None:
        self.policy = policy
        self.max_grad_norm = max_grad_norm
        self.device = next(policy.parameters()).device
        self.use_graph = use_graph and self.device.type == "cuda"
        self.inputs: dict[str, th.Tensor] = {}
        self.graph: th.cuda.CUDAGraph | None = None
        self.loss_sum = th.zeros((), device=self.device)
        #: the last step's absolute TD errors (the captured graph's output tensor, rewritten at each replay)
        self.td_errors = th.zeros((0, 1), device=self.device)
        if self.use_graph:
            make_optimizer_capturable(policy.optimizer, self.device)

    def __call__(
        self, replay_data: ReplayBufferSamples, discounts: th.Tensor | float, weights: th.Tensor | None = None
    ) -> th.Tensor:
        """
        Take one gradient step on ``replay_data``; its loss is added to :attr:`loss_sum` (no host sync).

        :param replay_data: a batch from the replay buffer
        :param discounts: ``replay_data.discounts`` for n-step returns, else gamma
        :param weights: importance-sampling weights of a prioritized replay buffer's batch, else ``None``
        :return: the batch's absolute TD errors (a copy when ``weights`` are given; else the graph's output tensor,
            rewritten by the next step)
        """
        batch = {
            "observations": replay_data.observations,
            "actions": replay_data.actions,
            "next_observations": replay_data.next_observations,
            "rewards": replay_data.rewards,
            "dones": replay_data.dones,
        }
        if weights is not None:
            batch["weights"] = weights
        fields_changed = set(batch) | {"discounts"} != set(self.inputs)
        if fields_changed or any(self.inputs[k].shape != v.shape for k, v in batch.items()):
            self.inputs = {k: v.detach().clone() for k, v in batch.items()}
            self.inputs["discounts"] = th.empty_like(replay_data.rewards)
            self.graph = None
        else:
            for key, value in batch.items():
                self.inputs[key].copy_(value, non_blocking=True)
        if isinstance(discounts, th.Tensor):
            self.inputs["discounts"].copy_(discounts, non_blocking=True)
        else:
            self.inputs["discounts"].fill_(discounts)  # no host-to-device copy, no sync
        if not self.use_graph:
            self._step()
        elif self.graph is None:
            self.graph = self._capture()
        else:
            self.graph.replay()
        # a prioritized buffer keeps the errors past the next replay, which rewrites the graph's output
        return self.td_errors.clone() if weights is not None else self.td_errors

    def _step(self) -> None:
        x = self.inputs
        loss, self.td_errors = double_dqn_step(
            self.policy,
            x["observations"],
            x["actions"],
            x["next_observations"],
            x["rewards"],
            x["dones"],
            x["discounts"],
            self.max_grad_norm,
            set_to_none=not self.use_graph,
            weights=x.get("weights"),
        )
        self.loss_sum += loss

    def _capture(self) -> th.cuda.CUDAGraph:
        """Warm up on a side stream, capture the step, and leave weights and optimizer as before the warm-up;
        then take the real step by replaying the graph."""
        saved = _snapshot(self.policy)
        loss_before = self.loss_sum.clone()
        stream = th.cuda.Stream(self.device)
        stream.wait_stream(th.cuda.current_stream(self.device))
        with th.cuda.stream(stream):
            for _ in range(WARMUP_STEPS):
                self.policy.optimizer.zero_grad(set_to_none=True)
                self._step()
        th.cuda.current_stream(self.device).wait_stream(stream)
        graph = th.cuda.CUDAGraph()
        self.policy.optimizer.zero_grad(set_to_none=True)
        with th.cuda.graph(graph):
            self._step()
        _restore(self.policy, saved)
        self.loss_sum.copy_(loss_before)
        graph.replay()
        return graph


def make_optimizer_capturable(optimizer: th.optim.Optimizer, device: th.device) -> None:
    """
    Let a PyTorch optimizer run inside a CUDA graph: ``capturable=True``, the fused implementation where there is
    one (else ``foreach``), the learning rate as a device tensor (so a schedule can change it between replays),
    step counters on the device.

    :param optimizer: an optimizer with a ``capturable`` option (Adam, AdamW, RMSprop, ...)
    :param device: the CUDA device
    """
    for group in optimizer.param_groups:
        if "capturable" not in group:
            raise ValueError(
                f"{type(optimizer).__name__} cannot run inside a CUDA graph; use Adam (SB3's default) or pass "
                "cuda_graph=False."
            )
        group["capturable"] = True
        if "fused" in group:  # Adam, AdamW: one kernel for every parameter's update
            group["fused"], group["foreach"] = True, False
        else:
            group["foreach"] = True
        if not isinstance(group["lr"], th.Tensor):
            group["lr"] = th.tensor(float(group["lr"]), device=device)
    for state in optimizer.state.values():
        if "step" in state and isinstance(state["step"], th.Tensor):
            state["step"] = state["step"].to(device=device, dtype=th.float32)


def set_learning_rate(optimizer: th.optim.Optimizer, learning_rate: float) -> None:
    """
    Set the learning rate in place, so that a captured graph sees the change.

    :param optimizer: the optimizer
    :param learning_rate: the new learning rate
    """
    for group in optimizer.param_groups:
        if isinstance(group["lr"], th.Tensor):
            group["lr"].fill_(learning_rate)
        else:
            group["lr"] = learning_rate


def _snapshot(policy: DQNPolicy) -> dict[str, Any]:
    return {
        "params": [p.detach().clone() for p in policy.parameters()],
        "state": [
            {k: v.clone() for k, v in s.items() if isinstance(v, th.Tensor)} for s in policy.optimizer.state.values()
        ],
    }


def _restore(policy: DQNPolicy, saved: dict[str, Any]) -> None:
    with th.no_grad():
        for param, value in zip(policy.parameters(), saved["params"], strict=True):
            param.copy_(value)
        states = list(policy.optimizer.state.values())
        for state, values in zip(states, saved["state"], strict=False):
            for key, value in values.items():
                state[key].copy_(value)
        # state created by the warm-up (a fresh optimizer) goes back to zero, as before any step
        for state in states[len(saved["state"]) :]:
            for value in state.values():
                if isinstance(value, th.Tensor):
                    value.zero_()
