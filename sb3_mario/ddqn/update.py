"""The Double-DQN gradient step: one function, run eagerly by :class:`~sb3_mario.ddqn.learner.Learner` and
captured as a CUDA graph by :class:`~sb3_mario.ddqn.graph.GraphedUpdate`; and the optimizer settings it runs with."""

import torch as th
from stable_baselines3.dqn.policies import DQNPolicy
from torch.nn import functional as F


def double_dqn_step(
    policy: DQNPolicy,
    observations: th.Tensor,
    actions: th.Tensor,
    next_observations: th.Tensor,
    rewards: th.Tensor,
    dones: th.Tensor,
    discounts: th.Tensor | float,
    max_grad_norm: float,
    set_to_none: bool = True,
    weights: th.Tensor | None = None,
) -> tuple[th.Tensor, th.Tensor]:
    """
    One gradient step of the policy's online Q-network on a batch, with the Double-DQN target.

    :param policy: the DQN policy (``q_net``, ``q_net_target``, ``optimizer``)
    :param observations: the batch's observations
    :param actions: the actions taken, ``(batch, 1)``
    :param next_observations: the observations n steps later
    :param rewards: the (n-step) returns, ``(batch, 1)``
    :param dones: 1 where the episode terminated within the n steps, ``(batch, 1)``
    :param discounts: gamma ** (steps actually taken), per sample for n-step returns, else gamma
    :param max_grad_norm: gradient clipping norm
    :param set_to_none: let ``zero_grad`` free the gradients (False inside a CUDA graph, whose tensors must stay)
    :param weights: importance-sampling weights of the samples, ``(batch, 1)``, from a prioritized replay buffer
        (:class:`~sb3_mario.PrioritizedFrameReplayBuffer`); ``None``: the plain mean, as SB3
    :return: the loss and the absolute TD errors ``(batch, 1)`` (detached, on the device: reading them waits for
        the GPU)
    """
    q_net, q_net_target = policy.q_net, policy.q_net_target
    with th.no_grad():
        # Double DQN: the online network picks the greedy next action a*
        next_actions = q_net(next_observations).argmax(dim=1, keepdim=True)
        # ... and the target network scores it: Q_target(s', a*)
        next_q_values = th.gather(q_net_target(next_observations), dim=1, index=next_actions)
        # 1-step (or n-step) TD target; terminal transitions bootstrap nothing
        target_q_values = rewards + (1 - dones) * discounts * next_q_values
    # Current Q-value estimates of the actions taken
    current_q_values = th.gather(q_net(observations), dim=1, index=actions.long())
    # Huber loss (less sensitive to outliers); with prioritized replay, each sample weighted by its IS weight
    if weights is None:
        loss = F.smooth_l1_loss(current_q_values, target_q_values)
    else:
        loss = (weights * F.smooth_l1_loss(current_q_values, target_q_values, reduction="none")).mean()
    # Optimize the policy, with the gradient norm clipped
    policy.optimizer.zero_grad(set_to_none=set_to_none)
    loss.backward()
    th.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
    policy.optimizer.step()
    return loss.detach(), (target_q_values - current_q_values.detach()).abs()


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
