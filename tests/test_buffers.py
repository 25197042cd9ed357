"""FrameReplayBuffer returns exactly what SB3's replay buffers return, from a fraction of the memory."""

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

from sb3_mario import DoubleDQN, make_mario_env
from sb3_mario.buffers import FrameReplayBuffer

#: "cpu" takes the code path of storage_device="cuda" (pinned staging aside); "cuda" runs only on a GPU machine
STORAGE = [None, "cpu", pytest.param("cuda", marks=pytest.mark.skipif(not th.cuda.is_available(), reason="no GPU"))]


class FlickerEnv(gym.Env):
    """Random frames (sometimes all black), random episode ends and time-limit truncations."""

    def __init__(self, channels: int = 1) -> None:
        # larger than the 12 channels of 4 stacked RGB frames, so that the stack reads as channel-first
        self.observation_space = gym.spaces.Box(0, 255, (16, 13, channels), np.uint8)
        self.action_space = gym.spaces.Discrete(3)

    def _frame(self) -> np.ndarray:
        if self.np_random.random() < 0.1:
            return np.zeros(self.observation_space.shape, np.uint8)
        return self.np_random.integers(0, 256, self.observation_space.shape, dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._frame(), {}

    def step(self, action):
        end = self.np_random.random()
        return self._frame(), float(self.np_random.normal()), end < 0.08, 0.08 <= end < 0.12, {}


def fill_both(buffers, n_envs: int, steps: int, channels: int = 1, seed: int = 0):
    env = VecTransposeImage(VecFrameStack(DummyVecEnv([lambda: FlickerEnv(channels)] * n_envs), 4))
    env.seed(seed)
    obs = env.reset()
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.integers(0, 3, n_envs)
        new_obs, rewards, dones, infos = env.step(actions)
        next_obs = new_obs.copy()
        for i, done in enumerate(dones):
            if done:
                next_obs[i] = infos[i]["terminal_observation"]
        for buffer in buffers:
            buffer.add(obs, next_obs, actions, rewards, dones, infos)
        obs = new_obs
    return env


def assert_same_samples(reference, ours, batch_size: int = 64, seed: int = 1):
    for k in range(3):
        np.random.seed(seed + k)
        expected = reference.sample(batch_size)
        np.random.seed(seed + k)
        got = ours.sample(batch_size)
        for name in expected._fields:
            a, b = getattr(expected, name), getattr(got, name)
            if a is None:
                assert b is None, name
            else:
                assert np.array_equal(a.numpy(), b.cpu().numpy()), name


@pytest.mark.parametrize("n_envs, steps, buffer_size", [(1, 50, 200), (3, 90, 300), (2, 700, 200), (4, 333, 100)])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("storage_device", STORAGE)
def test_samples_equal_sb3_replay_buffer(n_envs, steps, buffer_size, channels, storage_device):
    env = fill_both([], n_envs, 0, channels)  # only for its spaces
    spaces = (env.observation_space, env.action_space)
    reference = ReplayBuffer(buffer_size, *spaces, device="cpu", n_envs=n_envs)
    ours = FrameReplayBuffer(buffer_size, *spaces, device="cpu", n_envs=n_envs, frame_channels=channels,
                             storage_device=storage_device)  # fmt: skip
    fill_both([reference, ours], n_envs, steps, channels)
    assert ours.full == reference.full and ours.pos == reference.pos
    assert_same_samples(reference, ours)
    # and every stored transition, not only the sampled ones
    rows = np.arange(reference.buffer_size if reference.full else reference.pos)
    for env_index in range(n_envs):
        envs = np.full_like(rows, env_index)
        obs, next_obs = ours.observations_at(rows, envs)
        assert np.array_equal(obs, reference.observations[rows, env_index])
        assert np.array_equal(next_obs, reference.next_observations[rows, env_index])


@pytest.mark.parametrize("n_steps", [2, 3, 5])
@pytest.mark.parametrize("storage_device", STORAGE)
def test_n_step_samples_equal_sb3_n_step_buffer(n_steps, storage_device):
    env = fill_both([], 2, 0)
    spaces = (env.observation_space, env.action_space)
    kwargs = dict(device="cpu", n_envs=2, n_steps=n_steps, gamma=0.9)
    reference = NStepReplayBuffer(150, *spaces, **kwargs)
    ours = FrameReplayBuffer(150, *spaces, storage_device=storage_device, **kwargs)
    fill_both([reference, ours], 2, 260)
    assert_same_samples(reference, ours)


def test_a_million_transitions_fit_in_8_gib():
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    ours = FrameReplayBuffer.estimate_bytes(1_000_000, space)
    sb3 = 1_000_000 * 2 * space.shape[0] * 84 * 84
    assert ours <= 8 * 1024**3 and sb3 / ours > 7
    small = FrameReplayBuffer(1000, space, gym.spaces.Discrete(5), device="cpu")
    held = small.frames.nbytes + small.actions.nbytes + small.rewards.nbytes + small.dones.nbytes
    held += small.timeouts.nbytes + small.history.nbytes
    assert held == FrameReplayBuffer.estimate_bytes(1000, space)


def test_bad_shapes_get_clear_errors():
    with pytest.raises(ValueError, match="stacked images"):
        FrameReplayBuffer(10, gym.spaces.Box(0, 1, (8,)), gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="frame_channels=3"):
        FrameReplayBuffer(10, gym.spaces.Box(0, 255, (4, 8, 8), np.uint8), gym.spaces.Discrete(2), frame_channels=3)


@pytest.mark.parametrize("algorithm", [DQN, DoubleDQN])
def test_drop_in_for_dqn_and_doubledqn_on_mario(algorithm, tmp_path):
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=2, seed=0)
    kwargs = dict(gamma=0.9, replay_buffer_class=FrameReplayBuffer, replay_buffer_kwargs=dict(n_steps=3, gamma=0.9))
    model = algorithm("CnnPolicy", env, buffer_size=300, learning_starts=40, device="cpu", seed=0, **kwargs)
    model.learn(200)
    assert isinstance(model.replay_buffer, FrameReplayBuffer) and model._n_updates > 0
    model.save_replay_buffer(tmp_path / "buffer")
    model.load_replay_buffer(tmp_path / "buffer")
    sample = model.replay_buffer.sample(8)
    assert sample.observations.shape == (8, 4, 84, 84) and sample.discounts is not None
    env.close()


def test_saved_buffer_with_device_storage_loads_and_samples_the_same(tmp_path):
    import pickle

    env = fill_both([], 2, 0)
    ours = FrameReplayBuffer(100, env.observation_space, env.action_space, device="cpu", n_envs=2, storage_device="cpu")
    fill_both([ours], 2, 130)
    loaded = pickle.loads(pickle.dumps(ours))
    assert loaded.frames_on_device is not None
    assert_same_samples(ours, loaded)


def buffer_arrays(buffer) -> dict[str, np.ndarray]:
    return {k: v for k, v in vars(buffer).items() if isinstance(v, np.ndarray)}


@pytest.mark.parametrize(
    "make",
    [
        lambda spaces: ReplayBuffer(1_000, *spaces, device="cpu", n_envs=2),
        lambda spaces: ReplayBuffer(
            1_000, *spaces, device="cpu", n_envs=2, optimize_memory_usage=True, handle_timeout_termination=False
        ),
        lambda spaces: NStepReplayBuffer(1_000, *spaces, device="cpu", n_envs=2, n_steps=3, gamma=0.9),
        lambda spaces: FrameReplayBuffer(1_000, *spaces, device="cpu", n_envs=2, n_steps=3, gamma=0.9),
        lambda spaces: FrameReplayBuffer(1_000, *spaces, device="cpu", n_envs=2, storage_device="cpu"),
    ],
    ids=["sb3", "sb3-optimize-memory", "sb3-n-step", "frames", "frames-on-device"],
)
def test_a_partly_filled_buffer_saves_only_its_rows_and_loads_back_the_same(make, tmp_path):
    import pickle

    from sb3_mario.buffers import FilledRows

    env = fill_both([], 2, 0)
    buffer = make((env.observation_space, env.action_space))
    fill_both([buffer], 2, 60)
    whole, cut = pickle.dumps(buffer), pickle.dumps(FilledRows(buffer))
    assert len(cut) < len(whole) / 5  # 61 of 500 rows (the newest next observation included)
    loaded = pickle.loads(cut)
    assert type(loaded) is type(buffer) and (loaded.pos, loaded.full) == (buffer.pos, buffer.full)
    before, after = buffer_arrays(buffer), buffer_arrays(loaded)
    assert before.keys() == after.keys()
    for key in before:
        assert before[key].shape == after[key].shape and np.array_equal(before[key], after[key]), key
    assert_same_samples(buffer, loaded)
    # and it goes on filling as the original does
    fill_both([buffer, loaded], 2, 30, seed=5)
    assert_same_samples(buffer, loaded, seed=9)


def test_save_replay_buffer_writes_the_filled_rows_and_sb3_loads_it(tmp_path, capsys):
    env = fill_both([], 2, 0)
    model = DoubleDQN("MlpPolicy", env, buffer_size=2_000, learning_starts=10_000, device="cpu",
                      replay_buffer_class=FrameReplayBuffer, verbose=1)  # fmt: skip
    model.learn(100)
    capsys.readouterr()
    model.save_replay_buffer(tmp_path / "buffer")
    path = tmp_path / "buffer.pkl"
    assert f"Saved the replay buffer to {path}: {model.num_timesteps} of 2,000 transitions" in capsys.readouterr().out
    full_bytes = model.replay_buffer.frames.nbytes
    assert path.stat().st_size < full_bytes / 5  # ~100 of 1,000 rows
    other = DoubleDQN("MlpPolicy", env, buffer_size=2_000, learning_starts=10_000, device="cpu",
                      replay_buffer_class=FrameReplayBuffer)  # fmt: skip
    other.load_replay_buffer(path)  # SB3's own loading
    assert other.replay_buffer.pos == model.replay_buffer.pos and other.replay_buffer.frames.shape == (
        model.replay_buffer.frames.shape
    )
    assert_same_samples(model.replay_buffer, other.replay_buffer)
