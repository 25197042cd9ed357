"""The shipped agents (models/<env id>.pt): each loads without unpickling code, agrees with its json and its rl-zoo
folder and acts; the World 1-1 agent reaches the flag on the CPU."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch as th

from sb3_mario import DoubleDQN, make_mario_env
from sb3_mario.evaluation import (
    compare_greedy_actions,
    evaluate_mario,
    make_pipeline_env,
    trained_and_plain_sticky_actions,
)
from sb3_mario.record import record
from sb3_mario.weights import export_weights, largest_tensors, load_weights

pytestmark = pytest.mark.slow  # real subprocesses or training runs

#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800

MODELS = Path(__file__).resolve().parent.parent / "models"
ZOO_ZIP = MODELS / "ddqn" / "SuperMarioBros-1-1-v0_1" / "SuperMarioBros-1-1-v0.zip"
WORLD_1_1 = MODELS / "SuperMarioBros-1-1-v0.pt"
CLEARING_SEED = 0  # one of the 18 seeds of 0..19 on which the shipped agent clears (README)
SHIPPED = sorted(MODELS.glob("*.pt"))


def test_a_world_1_1_agent_is_shipped():
    assert WORLD_1_1 in SHIPPED


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda p: p.stem)
def test_each_shipped_model_agrees_with_its_config_and_its_zoo_folder_and_acts(weights):
    policy, config = load_weights(weights)
    env_id = config["env_id"]
    assert weights.stem == env_id, "models/<env id>.pt"
    env = make_pipeline_env(config, env_id=env_id)
    # the pipeline the json names builds the observations the network takes (channel-last, as SB3 transposes them)
    height, width, channels = env.observation_space.shape
    assert (channels, height, width) == tuple(config["observation_space"]["shape"]) == policy.observation_space.shape
    assert env.action_space.n == config["n_actions"] == policy.action_space.n
    obs = env.reset()
    for _ in range(20):
        action, _ = policy.predict(obs, deterministic=True)
        assert action.shape == (1,) and 0 <= int(action[0]) < config["n_actions"]
        obs, *_ = env.step(action)
    env.close()
    # the rl-zoo folder holds the same agent, trained as long, for the same env
    zoo_zip = MODELS / "ddqn" / f"{env_id}_1" / f"{env_id}.zip"
    model = DoubleDQN.load(zoo_zip, device="cpu")
    assert model.num_timesteps == config["num_timesteps"]
    assert model.observation_space.shape == policy.observation_space.shape
    assert (MODELS / "ddqn" / f"{env_id}_1" / env_id / "config.yml").is_file()
    assert weights.stat().st_size <= 4 * 1024**2, "at most 4 MiB per stage"


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda p: p.stem)
def test_a_float16_model_plays_the_greedy_actions_of_its_float32_zip(weights):
    # scripts/ship_model.py stores float16 tensors only when the 20 evaluation episodes play the same; the rl-zoo zip
    # beside them keeps the float32 network
    policy, config = load_weights(weights)
    if config.get("dtype") == "float32":
        pytest.skip(f"{weights.name} holds float32 weights")
    reference = DoubleDQN.load(MODELS / "ddqn" / f"{config['env_id']}_1" / f"{config['env_id']}.zip", device="cpu")
    # as trained and, for a model trained with sticky actions, also without them
    for sticky in trained_and_plain_sticky_actions(config):
        env = make_pipeline_env(config, env_id=config["env_id"], sticky_actions=sticky)
        steps, mismatch = compare_greedy_actions(reference, policy, env, n_episodes=20)
        env.close()
        assert mismatch is None and steps > 20, f"sticky actions {sticky}: first difference at {mismatch}"


def test_float16_weights_are_checked_against_float32_ones(tmp_path):
    # what scripts/ship_model.py measures before it chooses the file's precision; the rl-zoo zip holds the float32
    # network
    _policy, config = load_weights(WORLD_1_1)
    model = DoubleDQN.load(ZOO_ZIP, device="cpu")
    full, _ = export_weights(model, tmp_path / "full", env_id=config["env_id"])
    half, half_config = load_weights(export_weights(model, tmp_path / "half", half=True, env_id=config["env_id"])[0])
    assert half_config["dtype"] == "float16"
    assert (tmp_path / "half.pt").stat().st_size < 0.55 * full.stat().st_size
    # a float16 copy is close to the float32 network, not equal
    weight = next(iter(model.q_net.state_dict().values()))
    half_weight = next(iter(half.q_net.state_dict().values()))
    assert half_weight.dtype == weight.dtype and not np.array_equal(half_weight.numpy(), weight.numpy())
    assert np.allclose(half_weight.numpy(), weight.numpy(), atol=1e-3)
    env = make_pipeline_env(config, env_id=config["env_id"])
    steps, mismatch = compare_greedy_actions(model, model, env, n_episodes=1)
    assert mismatch is None and steps > 100, "a model agrees with itself over a whole episode"
    steps, mismatch = compare_greedy_actions(model, half, env, n_episodes=20)
    # the shipped file is the smallest that plays the 20 episodes as the float32 network does: float16, else
    # float16 for the largest tensors only ("mixed"), else float32
    env.close()
    if mismatch is None:
        assert config["dtype"] == "float16"
    elif config["dtype"] == "mixed":
        # the shipped file is the float32 net with its largest tensors rounded to float16; the test above plays it
        assert config["float16_tensors"] == largest_tensors(model.policy)
        mixed = export_weights(model, tmp_path / "mixed", half=config["float16_tensors"], env_id=config["env_id"])[0]
        shipped, exported = th.load(WORLD_1_1, weights_only=True), th.load(mixed, weights_only=True)
        assert all(th.equal(shipped[k], exported[k]) and shipped[k].dtype == exported[k].dtype for k in exported)
    else:
        assert config["dtype"] == "float32"


def test_shipped_weights_reach_the_flag():
    policy, config = load_weights(WORLD_1_1)
    assert config["env_id"] == "SuperMarioBros-1-1-v0" and config["num_timesteps"] == 1_400_304
    env = make_mario_env(config["env_id"], n_envs=1, frame_stack=config["frame_stack"],
                         wrapper_kwargs=config["wrapper_kwargs"])  # fmt: skip
    result = evaluate_mario(policy, env, n_episodes=1, first_seed=CLEARING_SEED)
    env.close()
    assert result.clears == [True] and result.max_x_pos[0] > 3100


def test_shipped_zoo_zip_predicts_like_the_weights():
    policy, config = load_weights(WORLD_1_1)
    model = DoubleDQN.load(ZOO_ZIP, device="cpu")
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (16, 4, 84, 84), dtype=np.uint8)
    with th.no_grad():
        q_zip = model.q_net(model.policy.obs_to_tensor(obs)[0])
        q_pt = policy.q_net(policy.obs_to_tensor(obs)[0])
    if config["dtype"] == "float32":
        assert th.equal(q_zip, q_pt)
    else:  # float16 tensors: the same network, rounded (the greedy actions are checked on the evaluation episodes)
        assert th.allclose(q_zip, q_pt, rtol=1e-2, atol=1e-2) and not th.equal(q_zip, q_pt)
    assert ZOO_ZIP.stat().st_size < 16 * 1024**2 and WORLD_1_1.stat().st_size < 16 * 1024**2


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda p: p.stem)
def test_zoo_enjoy_runs_each_shipped_agent(weights, tmp_path):
    env_id = weights.stem
    proc = subprocess.run(
        [sys.executable, "-m", "rl_zoo3.enjoy", "--algo", "ddqn", "--env", env_id, "-f", str(MODELS),
         "--exp-id", "1", "--no-render", "-n", "100"],
        cwd=tmp_path, capture_output=True, text=True, timeout=HANG_LIMIT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{env_id}.zip" in proc.stdout


@pytest.mark.parametrize("weights", SHIPPED, ids=lambda p: p.stem)
def test_evaluate_and_record_commands_play_each_shipped_model_on_its_stage(weights, tmp_path):
    _policy, config = load_weights(weights)
    stage = "-".join(config["env_id"].split("-")[1:3])
    common = dict(
        cwd=tmp_path, capture_output=True, text=True, timeout=HANG_LIMIT, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    proc = subprocess.run([sys.executable, "-m", "sb3_mario.evaluate", str(weights), "-n", "1"], **common)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith(f"{config['env_id']}: 1 episodes") and "clear_rate=" in proc.stdout
    proc = subprocess.run(
        [sys.executable, "-m", "sb3_mario.record", str(weights), "--out", "mario.gif", "--every", "50"], **common
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"'stage': '{stage}'" in proc.stdout and (tmp_path / "mario.gif").read_bytes()[:6] == b"GIF89a"


def test_record_writes_a_gif_of_the_clear(tmp_path):
    result = record(str(WORLD_1_1), str(tmp_path / "mario.gif"), seed=CLEARING_SEED, every=10)
    assert result["flag_get"] and (tmp_path / "mario.gif").read_bytes()[:6] == b"GIF89a"
