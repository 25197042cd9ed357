from sb3_mario.ddqn.ddqn import DoubleDQN

__all__ = ["DoubleDQN"]
