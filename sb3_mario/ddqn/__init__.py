"""Double DQN (van Hasselt et al. 2016) for Stable-Baselines3, with its fast path."""

from sb3_mario.ddqn.ddqn import DoubleDQN

__all__ = ["DoubleDQN"]
