"""MarioCNN: a drop-in, state_dict-compatible NatureCNN."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3.common.envs import FakeImageEnv
from stable_baselines3.common.torch_layers import NatureCNN
from torch import nn

from sb3_mario import DoubleDQN, MarioCNN


def image_space(channels: int, height: int, width: int) -> gym.spaces.Box:
    return gym.spaces.Box(0, 255, (channels, height, width), np.uint8)


@pytest.mark.parametrize("shape", [(4, 84, 84), (1, 84, 84), (3, 64, 96), (2, 36, 36), (8, 120, 128)])
def test_nature_cnn_weights_load_and_give_identical_features(shape):
    space = image_space(*shape)
    th.manual_seed(0)
    nature = NatureCNN(space, features_dim=256)
    mario = MarioCNN(space, features_dim=256)
    assert list(mario.state_dict()) == list(nature.state_dict())
    mario.load_state_dict(nature.state_dict())
    batch = th.as_tensor(np.stack([space.sample() for _ in range(5)])).float() / 255
    features = mario(batch)
    assert features.shape == (5, 256)
    assert th.equal(features, nature(batch))


def test_architecture_is_the_seeds():
    mario = MarioCNN(image_space(4, 84, 84))
    convs = [m for m in mario.cnn if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (8, 8), (4, 4)),
        (64, (4, 4), (2, 2)),
        (64, (3, 3), (1, 1)),
    ]
    assert mario.linear[0].in_features == 64 * 7 * 7 and mario.features_dim == 512


def test_flatten_size_follows_the_image_size():
    assert (
        MarioCNN(image_space(4, 100, 60)).linear[0].in_features == 64 * 9 * 4
    )  # 100 -> 24 -> 11 -> 9, 60 -> 14 -> 6 -> 4


@pytest.mark.parametrize(
    "space, message",
    [
        (gym.spaces.Box(-1, 1, (8,), np.float32), "MlpPolicy"),
        (gym.spaces.Dict({"a": image_space(1, 84, 84)}), "MultiInputPolicy"),
        (gym.spaces.Box(0, 255, (84, 84, 4), np.uint8), "channel-first.*VecTransposeImage"),
        (image_space(4, 30, 84), "at least 36x36"),
        (gym.spaces.Box(0.0, 1.0, (4, 84, 84), np.float32), "normalized_image=True"),
    ],
)
def test_unusable_observation_spaces_get_clear_errors(space, message):
    with pytest.raises(ValueError, match=message):
        MarioCNN(space)


def test_doubledqn_with_mariocnn_gets_a_linear_q_head_like_naturecnn():
    env = FakeImageEnv(screen_height=84, screen_width=84, n_channels=4, discrete=True)
    ours = DoubleDQN(
        "CnnPolicy", env, buffer_size=100, policy_kwargs=dict(features_extractor_class=MarioCNN), device="cpu"
    )
    sb3 = DoubleDQN("CnnPolicy", env, buffer_size=100, device="cpu")
    heads = [[type(m) for m in model.q_net.q_net] for model in (ours, sb3)]
    assert heads[0] == heads[1] == [nn.Linear]
    assert isinstance(ours.q_net.features_extractor, MarioCNN)
    assert ours.policy_kwargs["net_arch"] == []
    wide = DoubleDQN(
        "CnnPolicy",
        env,
        buffer_size=100,
        device="cpu",
        policy_kwargs=dict(features_extractor_class=MarioCNN, net_arch=[64]),
    )  # an explicit net_arch wins
    assert [type(m) for m in wide.q_net.q_net] == [nn.Linear, nn.ReLU, nn.Linear]
