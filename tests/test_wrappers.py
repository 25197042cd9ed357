"""The Mario pipeline on the real emulator and ROM."""

import cv2
import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3.common.vec_env import SubprocVecEnv

from sb3_mario import MarioWrapper, make_mario_env, mario_env_ids
from sb3_mario.wrappers import ACTION_SETS, level_x

ENV_ID = "SuperMarioBros-1-1-v0"
RIGHT = 1  # ["right"] in every action set


def mario(**kwargs) -> MarioWrapper:
    return MarioWrapper(gym.make(ENV_ID), **kwargs)


def test_ids_cover_every_registered_mario_env():
    ids = mario_env_ids()
    assert ENV_ID in ids and "SuperMarioBros-8-4-v0" in ids and "SuperMarioBros3-v0" in ids
    assert len([i for i in ids if i.startswith("SuperMarioBros-") and i.count("-") == 3]) == 32  # the SMB1 stages


@pytest.mark.parametrize("grayscale, channels", [(True, 1), (False, 3)])
def test_observation_space_and_dtype(grayscale, channels):
    env = mario(grayscale=grayscale, screen_size=64)
    obs, _info = env.reset(seed=0)
    assert obs.shape == (64, 64, channels) == env.observation_space.shape and obs.dtype == np.uint8
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(RIGHT)
    assert env.observation_space.contains(obs)


def test_observation_equals_a_reference_computed_from_the_rgb_screen():
    env = mario(frame_skip=4)
    env.reset(seed=0)
    for _ in range(30):
        obs, *_ = env.step(RIGHT)
    rgb = np.ascontiguousarray(env.unwrapped.screen)  # the full-size RGB frame of the last emulated frame
    reference = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA)
    # nes-py's native grayscale rounds its fixed-point luma differently from OpenCV by at most one level
    assert np.abs(obs[..., 0].astype(int) - reference.astype(int)).max() <= 1
    assert obs.std() > 10  # a real picture, not a blank frame


def test_max_pool_takes_the_brighter_of_the_last_two_frames():
    plain, pooled = mario(frame_skip=4), mario(frame_skip=4, max_pool=True)
    plain.reset(seed=0)
    pooled.reset(seed=0)
    for _ in range(20):
        a, *_ = plain.step(RIGHT)
        b, *_ = pooled.step(RIGHT)
    assert np.all(b >= a) and b.shape == a.shape


def classic_by_definition(infos: list[dict], x0: int, t0: int) -> list[float]:
    """The seed's reward, written out again from its definition."""
    rewards = []
    for info in infos:
        dx = info["x_pos"] - x0
        r = (
            (dx if abs(dx) <= 5 else 0)
            + min(0, info["time"] - t0)
            + (-15 if info["is_dying"] or info["is_dead"] else 0)
        )
        rewards.append(max(-15, min(15, r)))
        x0, t0 = info["x_pos"], info["time"]
    return rewards


def test_classic_reward_on_a_scripted_episode_walk_right_then_die():
    env = mario(frame_skip=1)
    _, info = env.reset(seed=0)
    x0, t0 = info["x_pos"], info["time"]
    rewards, infos = [], []
    terminated = truncated = False
    while not (terminated or truncated):
        _, reward, terminated, truncated, info = env.step(RIGHT)
        rewards.append(reward)
        infos.append(info)
    assert terminated and infos[-1]["is_dying"] and not infos[-1]["flag_get"]  # walked into the first Goomba
    assert rewards == classic_by_definition(infos, x0, t0)
    assert rewards[-1] <= -15 + 5  # the death penalty, plus at most one frame of progress
    # walking never jumps more than 5 px a frame: the episode's reward is progress + clock ticks - 15
    # (up to 1 lost to the clip of the last frame)
    progress, clock = infos[-1]["x_pos"] - x0, infos[-1]["time"] - t0
    assert progress > 200 and clock < 0
    assert sum(rewards) == pytest.approx(progress + clock - 15, abs=1)

    # with frame skip the same script gives the per-frame rewards summed per step, and stops at the death
    skipped = mario(frame_skip=4)
    skipped.reset(seed=0)
    total, steps, done = 0.0, 0, False
    while not done:
        _, reward, terminated, truncated, _ = skipped.step(RIGHT)
        total, steps, done = total + reward, steps + 1, terminated or truncated
    assert total == pytest.approx(sum(rewards)) and steps == -(-len(rewards) // 4)


def test_native_reward_is_gym_super_mario_bros_own():
    raw = gym.make(ENV_ID)
    raw.reset(seed=0)
    env = mario(frame_skip=2, reward="native", reward_scale=0.1)
    env.reset(seed=0)
    for _ in range(10):
        expected = sum(raw.step(128)[1] for _ in range(2))  # 128 = the "right" button byte
        assert env.step(RIGHT)[1] == pytest.approx(0.1 * expected)


def test_noop_starts_are_random_and_seeded():
    def start_ram(seed: int) -> bytes:
        env = mario(noop_max=30)
        env.reset(seed=seed)
        return env.unwrapped.ram.tobytes()  # includes the NES frame counter

    assert start_ram(0) == start_ram(0)
    assert len({start_ram(seed) for seed in range(8)}) > 2
    plain = mario()
    plain.reset(seed=0)
    assert len({start_ram(seed) for seed in range(8)} | {plain.unwrapped.ram.tobytes()}) > 2


def test_info_keeps_flag_and_position_and_adds_max_x():
    env = mario()
    env.reset(seed=0)
    for _ in range(10):
        _, _, _, _, info = env.step(RIGHT)
    assert {"flag_get", "x_pos", "max_x_pos"} <= set(info)
    assert info["max_x_pos"] >= info["x_pos"] > 40


#: right-only agent steps (action, repeats) on World 4-4 up to its first loop, which sends Mario back 4 pages
CASTLE_LOOP = [(3, 3), (1, 3), (0, 6), (2, 3), (1, 3), (3, 3), (2, 3), (0, 6), (3, 3), (2, 3), (3, 3), (2, 3), (3, 3),
               (2, 3), (3, 9), (2, 6), (0, 3), (3, 3), (2, 3), (3, 3), (2, 3), (3, 3), (2, 3), (0, 9), (1, 3), (3, 3),
               (0, 3), (1, 10)]  # fmt: skip


def test_a_castle_loop_sends_mario_back_without_a_65000_pixel_jump():
    assert level_x(1009) == 1009 and level_x(0xFFF3) == -13 and level_x(0) == 0
    env = MarioWrapper(gym.make("SuperMarioBros-4-4-v0"), noop_max=0, reward_scale=1.0, stuck_steps=None)
    env.reset(seed=0)
    raw, farthest, rewards = [], [], []
    for action, repeats in CASTLE_LOOP:
        for _ in range(repeats):
            _, reward, terminated, truncated, info = env.step(action)
            assert not (terminated or truncated)
            raw.append(info["x_pos"])
            farthest.append(info["max_x_pos"])
            rewards.append(reward)
    loop = next(k for k, x in enumerate(raw) if x >= 0x8000)  # the page counter went below 0
    assert 990 <= raw[loop - 1] <= 1030 and level_x(raw[loop]) < 0
    assert max(raw[:loop]) <= farthest[-1] < 1100  # the farthest point of the level, not the counter's wrap
    assert max(rewards[loop:]) <= 4 * 5  # no progress reward for the jump; at most 5 pixels a frame after it


@pytest.mark.parametrize("actions", sorted(ACTION_SETS))
def test_action_sets(actions):
    env = mario(actions=actions)
    assert env.action_space.n == len(ACTION_SETS[actions])


def test_rejects_a_non_mario_env():
    with pytest.raises(ValueError, match=r"only wraps gym-super-mario-bros envs, got 'CartPole-v1'.*gym.make"):
        MarioWrapper(gym.make("CartPole-v1"))


@pytest.mark.parametrize(
    "kwargs, word",
    [(dict(actions="left_only"), "action set"), (dict(reward="score"), "reward"), (dict(frame_skip=0), "frame_skip")],
)
def test_bad_wrapper_arguments(kwargs, word):
    with pytest.raises(ValueError, match=word):
        mario(**kwargs)


def test_classic_reward_needs_the_clock():
    env = MarioWrapper(gym.make("SuperMarioBros2USA-v0"))
    with pytest.raises(ValueError, match="reward='native'"):
        env.reset(seed=0)
    MarioWrapper(gym.make("SuperMarioBros2USA-v0"), reward="native").reset(seed=0)


def test_unknown_env_id_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'SuperMarioBros-1-1-v0'"):
        make_mario_env("SuperMarioBros-1-1-v9")


@pytest.mark.slow
def test_make_mario_env_stacks_frames_in_subprocesses():
    env = make_mario_env(ENV_ID, n_envs=2, seed=0, vec_env_cls="subproc")
    try:
        assert isinstance(env.unwrapped, SubprocVecEnv)
        obs = env.reset()
        assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
        obs, rewards, _dones, infos = env.step(np.array([RIGHT, RIGHT]))
        assert obs.shape == (2, 84, 84, 4) and rewards.shape == (2,) and "x_pos" in infos[0]
        assert not np.array_equal(obs[..., -1], obs[..., 0])  # the newest frame differs from the padding
    finally:
        env.close()


def test_stuck_episodes_are_truncated():
    env = mario(stuck_steps=20)
    env.reset(seed=0)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        _, _, terminated, truncated, _ = env.step(0)  # NOOP: Mario stands still
        steps += 1
    assert truncated and not terminated and steps == 20
    env.reset(seed=0)
    for _ in range(40):  # running right keeps making progress
        _, _, terminated, truncated, _ = env.step(RIGHT)
        assert not truncated


def play(env: MarioWrapper, actions: list[int], seed: int = 0) -> tuple[list[bytes], list[int]]:
    env.reset(seed=seed)
    screens, xs = [], []
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        screens.append(obs.tobytes())
        xs.append(info["x_pos"])
        if terminated or truncated:
            break
    return screens, xs


def test_sticky_actions_zero_plays_every_chosen_action():
    script = [RIGHT, 2, 0, RIGHT, 4, RIGHT, 0, 0, 2] * 6
    assert play(mario(), script) == play(mario(sticky_actions=0.0), script)


def test_sticky_actions_repeat_the_previous_frames_action_seeded_by_the_env():
    script = [RIGHT, 0] * 40  # alternate: a repeated action shows as different progress
    plain = play(mario(frame_skip=1), script)
    sticky = play(mario(frame_skip=1, sticky_actions=0.25), script)
    assert sticky == play(mario(frame_skip=1, sticky_actions=0.25), script)  # same seed, same game
    assert sticky != plain and sticky != play(mario(frame_skip=1, sticky_actions=0.25), script, seed=1)
    # per NES frame: with frame skip 1, a repeated frame is one where the chosen action was not played
    env = mario(frame_skip=1, sticky_actions=0.25)
    env.reset(seed=3)
    played = []
    original = env.core.env.step
    env.core.env.step = lambda a: (played.append(a), original(a))[1]
    for action in script:
        env.step(action)
    repeated = [i for i, (a, chosen) in enumerate(zip(played, script, strict=True)) if a != chosen]
    assert all(played[i] == played[i - 1] for i in repeated if i > 0)
    assert 0.1 < len(repeated) / len(script) < 0.4  # about 1/4 of the frames


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_sticky_actions_must_be_a_probability(p):
    with pytest.raises(ValueError, match=r"sticky_actions is a probability in \[0, 1\)"):
        mario(sticky_actions=p)
