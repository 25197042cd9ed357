"""Model files: the evaluate command and clear errors for bad files."""

import zipfile

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.envs import FakeImageEnv

from sb3_mario import DoubleDQN, make_mario_env
from sb3_mario.evaluate import main as evaluate_main
from sb3_mario.evaluation import MarioEvalResult


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "mario.zip"
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=1, seed=0)
    DoubleDQN("CnnPolicy", env, buffer_size=100, learning_starts=10, device="cpu", seed=0).learn(20).save(path)
    env.close()
    return path


@pytest.mark.slow
def test_evaluate_command_prints_clear_rate_max_x_and_return(saved_model, capsys):
    result = evaluate_main([str(saved_model), "-n", "2", "--noop-max", "30"])
    out = capsys.readouterr().out
    assert "episode   0 seed   0" in out and "episode   1 seed   1" in out and "sticky actions 0.0" in out
    assert f"clear_rate={result.clear_rate:.2f}" in out and "mean_max_x_pos=" in out and "mean_return=" in out
    # an agent this short-trained clears nothing: the last line says where its episodes stopped
    assert result.clears == [False, False]
    assert "not cleared: 2 episodes, stopped at " in out
    for x in {x // 16 * 16 for x in result.max_x_pos}:
        assert f"x {x}-{x + 15} (" in out


def test_stops_group_the_uncleared_episodes_by_block():
    result = MarioEvalResult(
        clears=[False, True, False, False, False],
        max_x_pos=[2040, 3161, 2047, 600, 2031],
        returns=[0.0] * 5,
        lengths=[1] * 5,
    )
    # 2040 and 2047 share the block 2032-2047; 2031 is in 2016-2031; 600 in 592-607; the clear is left out
    assert result.stops() == [(2032, 2), (592, 1), (2016, 1)]
    assert MarioEvalResult(clears=[True], max_x_pos=[3161], returns=[1.0], lengths=[1]).stops() == []


@pytest.mark.slow
def test_truncated_model_zip_gets_a_clear_error(saved_model, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(saved_model.read_bytes()[: saved_model.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable Stable-Baselines3 model zip.*previous checkpoint"):
        DoubleDQN.load(broken)


def test_not_a_zip_gets_a_clear_error(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_text("hello")
    with pytest.raises(ValueError, match="not a readable"):
        DoubleDQN.load(junk)


def test_zip_without_data_gets_a_clear_error(tmp_path):
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("other", "x")
    with pytest.raises(ValueError, match="not a readable"):
        DoubleDQN.load(empty)


def test_model_of_another_algorithm_gets_a_clear_error(tmp_path):
    PPO("CnnPolicy", FakeImageEnv(), n_steps=16, batch_size=16, device="cpu").save(tmp_path / "ppo.zip")
    with pytest.raises(ValueError, match="saved by another algorithm.*--algo"):
        DoubleDQN.load(tmp_path / "ppo.zip")


def test_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        DoubleDQN.load(tmp_path / "nothing.zip")


@pytest.mark.slow
def test_exported_weights_load_without_unpickling_and_predict_like_the_zip(saved_model, tmp_path):
    import torch as th

    from sb3_mario.weights import export_weights, load_weights

    model = DoubleDQN.load(saved_model, device="cpu")
    pt, _js = export_weights(
        model, tmp_path / "mario", env_id="SuperMarioBros-1-1-v0", wrapper_kwargs={"actions": "right_only"}
    )
    assert th.load(pt, weights_only=True)  # plain tensors: loadable by torch's weights-only unpickler
    policy, config = load_weights(pt)
    assert config["env_id"] == "SuperMarioBros-1-1-v0" and config["frame_stack"] == 4
    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=1, seed=0)
    obs = np.stack([env.reset()[0]] + [env.step(np.array([1]))[0][0] for _ in range(7)])
    env.close()
    assert np.array_equal(policy.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    q_zip = model.q_net(model.policy.obs_to_tensor(obs)[0])
    q_pt = policy.q_net(policy.obs_to_tensor(obs)[0])
    assert th.allclose(q_zip, q_pt)


@pytest.mark.slow
def test_evaluate_command_runs_exported_weights(saved_model, tmp_path, capsys):
    from sb3_mario.weights import export_weights

    pt, _ = export_weights(DoubleDQN.load(saved_model, device="cpu"), tmp_path / "mario")
    result = evaluate_main([str(pt), "-n", "1"])
    assert len(result.clears) == 1 and "clear_rate=" in capsys.readouterr().out


@pytest.mark.slow
def test_corrupt_exported_weights_get_a_clear_error(saved_model, tmp_path):
    from sb3_mario.weights import export_weights, load_weights

    pt, _ = export_weights(DoubleDQN.load(saved_model, device="cpu"), tmp_path / "mario")
    pt.write_bytes(pt.read_bytes()[:100])
    with pytest.raises(ValueError, match="not weights exported by sb3_mario"):
        load_weights(pt)


@pytest.mark.slow
def test_evaluate_command_plays_with_sticky_actions_when_asked(saved_model, capsys):
    sticky = evaluate_main([str(saved_model), "-n", "1", "--sticky-actions", "0.25"])
    out = capsys.readouterr().out
    assert "SuperMarioBros-1-1-v0: 1 episodes, seeds 0..0, 0-30 no-op frames, sticky actions 0.25, greedy" in out
    assert len(sticky.clears) == 1


@pytest.mark.slow
def test_evaluate_command_starts_at_the_first_seed_it_is_given(saved_model, capsys):
    # episodes 1 and 2 of seeds 0..2 are the episodes of seeds 1..2
    all_three = evaluate_main([str(saved_model), "-n", "3", "--sticky-actions", "0.25"])
    capsys.readouterr()
    last_two = evaluate_main([str(saved_model), "-n", "2", "--first-seed", "1", "--sticky-actions", "0.25"])
    out = capsys.readouterr().out
    assert "2 episodes, seeds 1..2," in out and "episode   0 seed   1:" in out
    assert last_two.max_x_pos == all_three.max_x_pos[1:] and last_two.lengths == all_three.lengths[1:]
    assert last_two.returns == all_three.returns[1:]


@pytest.mark.slow
def test_record_plays_the_stage_the_model_was_trained_on(saved_model, tmp_path):
    from sb3_mario.record import record
    from sb3_mario.weights import export_weights

    pt, _ = export_weights(
        DoubleDQN.load(saved_model, device="cpu"), tmp_path / "mario", env_id="SuperMarioBros-1-2-v0"
    )
    result = record(str(pt), str(tmp_path / "mario.gif"), every=50, max_steps=60)
    assert result["env_id"] == "SuperMarioBros-1-2-v0" and result["stage"] == "1-2"  # the stage the NES played
    assert (tmp_path / "mario.gif").read_bytes()[:6] == b"GIF89a"
    other = record(str(pt), str(tmp_path / "other.gif"), env_id="SuperMarioBros-1-1-v0", max_steps=5)
    assert other["env_id"] == "SuperMarioBros-1-1-v0" and other["stage"] == "1-1"


@pytest.mark.slow
def test_float16_for_the_largest_tensors_only(tmp_path):
    import torch as th

    from sb3_mario import MarioCNN
    from sb3_mario.weights import export_weights, largest_tensors, load_weights

    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=1)
    model = DoubleDQN(
        "CnnPolicy", env, buffer_size=100, device="cpu", policy_kwargs={"features_extractor_class": MarioCNN}
    )
    env.close()
    # MarioCNN on 4x84x84, 5 actions: the linear layer holds 3136 * 512 = 1,605,632 of the 1,686,693 weights (95.2%)
    sizes = {k: v.numel() for k, v in model.q_net.state_dict().items()}
    assert sizes["features_extractor.linear.0.weight"] == 1_605_632 and sum(sizes.values()) == 1_686_693
    assert largest_tensors(model.policy) == ["features_extractor.linear.0.weight"]
    assert largest_tensors(model.policy, share=0.96) == [
        "features_extractor.linear.0.weight",
        "features_extractor.cnn.4.weight",
    ]
    pt, _js = export_weights(model, tmp_path / "mixed", half=largest_tensors(model.policy))
    stored = th.load(pt, weights_only=True)
    assert stored["features_extractor.linear.0.weight"].dtype == th.float16
    assert {v.dtype for k, v in stored.items() if k != "features_extractor.linear.0.weight"} == {th.float32}
    policy, config = load_weights(pt)
    assert config["dtype"] == "mixed" and config["float16_tensors"] == ["features_extractor.linear.0.weight"]
    loaded = policy.q_net.state_dict()
    original = model.q_net.state_dict()
    assert th.equal(loaded["q_net.0.weight"], original["q_net.0.weight"])  # float32 tensors: unchanged
    linear = "features_extractor.linear.0.weight"
    assert loaded[linear].dtype == th.float32 and th.equal(loaded[linear], original[linear].half().float())
    full, _ = export_weights(model, tmp_path / "full", half=True)
    plain, _ = export_weights(model, tmp_path / "plain")
    assert full.stat().st_size < pt.stat().st_size < 0.55 * plain.stat().st_size
    assert [load_weights(p)[1]["dtype"] for p in (full, plain)] == ["float16", "float32"]
    with pytest.raises(ValueError, match="does not have: \\['q_net.9.weight'\\]"):
        export_weights(model, tmp_path / "bad", half=["q_net.9.weight"])


@pytest.mark.slow
@pytest.mark.parametrize("float16_checkpoints", [True, False])
def test_float16_checkpoints_ship_as_float16_files_that_play_as_they_do(tmp_path, float16_checkpoints):
    import torch as th

    from sb3_mario import MarioCNN
    from sb3_mario.weights import export_weights, holds_float16_numbers, load_weights

    env = make_mario_env("SuperMarioBros-1-1-v0", n_envs=1, seed=0)
    policy_kwargs = dict(features_extractor_class=MarioCNN)
    model = DoubleDQN("CnnPolicy", env, buffer_size=100, learning_starts=10, device="cpu", seed=0,
                      float16_checkpoints=float16_checkpoints, policy_kwargs=policy_kwargs)  # fmt: skip
    model.learn(40)
    assert not holds_float16_numbers(model.policy)  # Adam's steps move the weights off float16 numbers
    model.save(tmp_path / "model")
    saved = DoubleDQN.load(tmp_path / "model", device="cpu")
    assert holds_float16_numbers(model.policy) is holds_float16_numbers(saved.policy) is float16_checkpoints
    assert saved.float16_checkpoints is float16_checkpoints  # a run resumed from the zip goes on rounding
    # the float16 file against the float32 one, both loaded as shipped files are, on frames of the stage
    full, _ = load_weights(export_weights(saved, tmp_path / "full")[0])
    half, _ = load_weights(export_weights(saved, tmp_path / "half", half=True)[0])
    frames = [env.reset()] + [env.step(np.array([action]))[0] for action in (1, 2, 2, 4, 0, 3) * 5]
    with th.no_grad():
        observations = full.obs_to_tensor(np.concatenate(frames))[0]
        assert th.equal(full.q_net(observations), half.q_net(observations)) is float16_checkpoints
    # training goes on from the rounded weights
    model.learn(20, reset_num_timesteps=False)
    assert model.num_timesteps == 60 and not holds_float16_numbers(model.policy)
    env.close()


def test_a_copy_of_a_sticky_trained_model_is_compared_with_and_without_sticky_actions():
    from sb3_mario.evaluation import trained_and_plain_sticky_actions

    assert trained_and_plain_sticky_actions({"wrapper_kwargs": {"sticky_actions": 0.25}}) == [0.25, 0.0]
    assert trained_and_plain_sticky_actions({"wrapper_kwargs": {"sticky_actions": 0}}) == [0.0]
    assert trained_and_plain_sticky_actions({"wrapper_kwargs": {}}) == trained_and_plain_sticky_actions({}) == [0.0]
