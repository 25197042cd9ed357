"""sb3-mario: Double DQN for Stable-Baselines3 and rl-baselines3-zoo, with Super Mario Bros. environments."""

from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.callbacks import MarioEvalCallback
from sb3_mario.cnn import MarioCNN
from sb3_mario.ddqn import DoubleDQN
from sb3_mario.env import make_mario_env, mario_env_ids
from sb3_mario.evaluation import MarioEvalResult, evaluate_mario
from sb3_mario.prioritized_replay import PrioritizedFrameReplayBuffer
from sb3_mario.version import __version__
from sb3_mario.wrappers import MarioWrapper

__all__ = [
    "DoubleDQN",
    "FrameReplayBuffer",
    "MarioCNN",
    "MarioEvalCallback",
    "MarioEvalResult",
    "MarioWrapper",
    "PrioritizedFrameReplayBuffer",
    "__version__",
    "evaluate_mario",
    "make_mario_env",
    "mario_env_ids",
]
