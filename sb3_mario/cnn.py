"""The features extractor of the seed's Mario agent, NatureCNN-compatible."""

import gymnasium as gym
import torch as th
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn


class MarioCNN(BaseFeaturesExtractor):
    """
    The CNN of the DQN Nature paper (Mnih et al., 2015), as used by the seed's Mario agent:
    conv 32x8/4, 64x4/2, 64x3/1 (ReLU after each), flatten, linear to ``features_dim``, ReLU.

    A drop-in replacement for SB3's :class:`~stable_baselines3.common.torch_layers.NatureCNN`: same
    constructor, same ``state_dict`` layout (``cnn.0``, ``cnn.2``, ``cnn.4``, ``linear.0``), so NatureCNN
    weights load into it and give identical features. It takes any number of stacked frames and any image
    size the convolutions accept (at least 36x36); the flatten size comes from a dummy forward pass.
    Pixels are scaled to [0, 1] by SB3's preprocessing (``normalize_images=True``), not inside the network.

    :param observation_space: a channel-first image ``Box`` (SB3's ``VecTransposeImage`` makes one from
        a channel-last env automatically)
    :param features_dim: Number of features extracted (units of the last linear layer)
    :param normalized_image: Whether to assume that the image is already normalized
        or not (this disables dtype and bounds checks): when True, it only checks that
        the space is a Box and has 3 dimensions.
    """

    MIN_SIZE = 36

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 512,
        normalized_image: bool = False,
    ) -> None:
        check_image_space(observation_space, normalized_image)
        assert isinstance(observation_space, gym.spaces.Box)
        super().__init__(observation_space, features_dim)
        n_input_channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(n_input_channels, 32, kernel_size=8, stride=4, padding=0),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=0),
            nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=0),
            nn.ReLU(),
            nn.Flatten(),
        )
        # Compute the flatten size by doing one forward pass
        with th.no_grad():
            n_flatten = self.cnn(th.as_tensor(observation_space.sample()[None]).float()).shape[1]
        self.linear = nn.Sequential(nn.Linear(n_flatten, features_dim), nn.ReLU())

    def forward(self, observations: th.Tensor) -> th.Tensor:
        """
        :param observations: a batch of channel-first images, already scaled by SB3's preprocessing
        :return: the ``features_dim`` features of each image
        """
        return self.linear(self.cnn(observations))


def check_image_space(observation_space: gym.Space, normalized_image: bool = False) -> None:
    """
    Raise a ``ValueError`` that says what to do when ``observation_space`` cannot feed :class:`MarioCNN`.

    :param observation_space: the policy's observation space
    :param normalized_image: whether float images in [0, 1] are allowed (skips dtype and bounds checks)
    """
    name = MarioCNN.__name__
    if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 3:
        raise ValueError(
            f"{name} needs image observations (a 3-D Box: channels x height x width), got {observation_space}. "
            "For vector observations use 'MlpPolicy' (no features_extractor_class); for Dict observations "
            "use 'MultiInputPolicy'."
        )
    if not is_image_space(observation_space, check_channels=False, normalized_image=normalized_image):
        raise ValueError(
            f"{name} needs uint8 images in [0, 255], got {observation_space}. "
            "Pass policy_kwargs=dict(normalized_image=True) if your images are already floats in [0, 1]."
        )
    if not is_image_space_channels_first(observation_space):
        raise ValueError(
            f"{name} needs channel-first images (C, H, W), got shape {observation_space.shape}, which looks "
            "channel-last. Pass the env to the algorithm (SB3 then adds VecTransposeImage), or wrap it yourself "
            "with stable_baselines3.common.vec_env.VecTransposeImage."
        )
    height, width = observation_space.shape[1:]
    if min(height, width) < MarioCNN.MIN_SIZE:
        raise ValueError(
            f"{name} needs images of at least {MarioCNN.MIN_SIZE}x{MarioCNN.MIN_SIZE} pixels for its three "
            f"convolutions, got {height}x{width}. Resize the frames (e.g. MarioWrapper(screen_size=84)) "
            "or use a features extractor with smaller kernels."
        )
