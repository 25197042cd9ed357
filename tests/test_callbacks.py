"""MarioEvalCallback and evaluation on the real Mario VecEnv."""

import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from sb3_mario import DoubleDQN, MarioEvalCallback, evaluate_mario, make_mario_env
from sb3_mario.callbacks import within_noise_of_best
from sb3_mario.evaluation import MarioEvalResult

ENV_ID = "SuperMarioBros-1-1-v0"


@pytest.fixture(scope="module")
def tiny_model():
    env = make_mario_env(ENV_ID, n_envs=1, seed=0)
    model = DoubleDQN("CnnPolicy", env, buffer_size=200, learning_starts=50, device="cpu", seed=0)
    yield model
    env.close()


@pytest.mark.slow
def test_callback_logs_clear_rate_max_x_and_return(tiny_model, tmp_path):
    tiny_model.set_logger(configure(str(tmp_path), ["stdout", "csv", "tensorboard"]))
    callback = MarioEvalCallback(n_eval_episodes=2, eval_freq=60, best_model_save_path=str(tmp_path),
                                 log_path=str(tmp_path))  # fmt: skip
    tiny_model.learn(120, callback=callback, reset_num_timesteps=True)
    assert len(callback.history["timesteps"]) == 2
    result = callback.last_result
    assert result is not None and len(result.clears) == 2 and all(x > 0 for x in result.max_x_pos)
    csv = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"eval/clear_rate", "eval/mean_max_x_pos", "eval/mean_reward"} <= set(csv)
    saved = np.load(tmp_path / "mario_evaluations.npz")
    assert saved["clears"].shape == (2, 2) and saved["max_x_pos"].shape == (2, 2)
    assert (tmp_path / "best_model.zip").is_file()
    assert list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_the_final_model_is_evaluated_when_training_ends(tiny_model, tmp_path):
    # 92 steps (whole rollouts of train_freq=4), every 60: the checkpoint at 60, then the final model at 92 (a
    # candidate for best_model.zip)
    callback = MarioEvalCallback(n_eval_episodes=1, eval_freq=60, best_model_save_path=str(tmp_path))
    tiny_model.learn(92, callback=callback, reset_num_timesteps=True)
    assert tiny_model.num_timesteps == 92 and callback.history["timesteps"] == [60, 92]
    # ... but not twice when the last step was evaluated anyway
    callback = MarioEvalCallback(n_eval_episodes=1, eval_freq=46)
    tiny_model.learn(92, callback=callback, reset_num_timesteps=True)
    assert callback.history["timesteps"] == [46, 92]
    # ... and not at all in a run shorter than eval_freq: nothing to compete with
    callback = MarioEvalCallback(n_eval_episodes=1, eval_freq=200)
    tiny_model.learn(92, callback=callback, reset_num_timesteps=True)
    assert callback.history["timesteps"] == []


@pytest.mark.slow
def test_evaluate_mario_is_seeded(tiny_model):
    env = make_mario_env(ENV_ID, n_envs=1, wrapper_kwargs=dict(noop_max=30))
    try:
        first = evaluate_mario(tiny_model, env, n_episodes=2, first_seed=5)
        again = evaluate_mario(tiny_model, env, n_episodes=2, first_seed=5)
    finally:
        env.close()
    assert first == again
    assert 0.0 <= first.clear_rate <= 1.0 and first.mean_max_x_pos > 0


@pytest.mark.slow
def test_sb3_evaluate_policy_on_the_mario_vecenv(tiny_model):
    env = make_mario_env(ENV_ID, n_envs=2, seed=0)
    try:
        rewards, lengths = evaluate_policy(tiny_model, env, n_eval_episodes=2, return_episode_rewards=True)
    finally:
        env.close()
    assert len(rewards) == 2 and all(n > 0 for n in lengths)


def test_callback_rejects_a_training_env_without_the_mario_wrapper(tmp_path):
    from stable_baselines3.common.envs import FakeImageEnv

    model = DoubleDQN("CnnPolicy", FakeImageEnv(discrete=True), buffer_size=100, device="cpu")
    with pytest.raises(ValueError, match="MarioWrapper"):
        model.learn(10, callback=MarioEvalCallback(eval_freq=5))


@pytest.mark.slow
def test_evaluation_in_worker_processes_keeps_the_best_checkpoint_by_clear_rate(tmp_path):
    env = make_mario_env(ENV_ID, n_envs=1, seed=0)
    model = DoubleDQN("CnnPolicy", env, buffer_size=300, learning_starts=50, device="cpu", seed=0)
    callback = MarioEvalCallback(n_eval_episodes=2, eval_freq=60, best_model_save_path=str(tmp_path),
                                 log_path=str(tmp_path), n_eval_workers=2)  # fmt: skip
    model.learn(180, callback=callback)
    env.close()
    # every checkpoint reported at its own step, the last ones waited for at the end of training
    assert callback.history["timesteps"] == [60, 120, 180]
    assert {p.name for p in tmp_path.iterdir()} >= {"best_model.zip", "evaluations.npz", "mario_evaluations.npz"}
    assert not list(tmp_path.glob("mario-eval-*")), "the checkpoints in flight are cleaned up"
    zoo = np.load(tmp_path / "evaluations.npz")
    assert zoo["timesteps"].tolist() == [60, 120, 180] and zoo["results"].shape == (3, 2)
    # best_model.zip is the run's pick, here (no clears) the farthest checkpoint: played again in this process on the
    # same seeds, it gives what the workers reported
    assert not any(any(c) for c in callback.history["clears"])
    k = max(range(3), key=lambda i: np.mean(callback.history["max_x_pos"][i]))
    best = DoubleDQN.load(tmp_path / "best_model.zip", device="cpu")
    assert best.num_timesteps == callback.history["timesteps"][k]
    eval_env = make_mario_env(ENV_ID, n_envs=1, wrapper_kwargs=dict(noop_max=30))
    # evaluation k + 1 played seeds 2 (k + 1) and 2 (k + 1) + 1, never the 0 and 1 of sb3_mario.evaluate -n 2
    again = evaluate_mario(best, eval_env, n_episodes=2, first_seed=2 * (k + 1))
    eval_env.close()
    assert again.max_x_pos == callback.history["max_x_pos"][k] and again.clears == callback.history["clears"][k]


def test_worker_evaluation_needs_the_training_env_and_greedy_actions():
    with pytest.raises(ValueError, match="n_eval_workers > 0 builds its eval envs from the training env"):
        MarioEvalCallback(eval_env=make_mario_env(ENV_ID, n_envs=1), n_eval_workers=1)


def test_the_pick_is_the_latest_checkpoint_within_one_standard_error_of_the_best():
    # 20 episodes at a best rate of 0.6: standard error sqrt(0.6 * 0.4 / 20) = 0.1095, so 0.5 (0.6 - 0.1) is within
    # it and 0.45 (0.6 - 0.15) is not
    assert within_noise_of_best((0.5, 100.0), 0.6, 20, (0.6, 3000.0))
    assert not within_noise_of_best((0.45, 3161.0), 0.6, 20, (0.6, 3000.0))
    assert within_noise_of_best((0.6, 100.0), 0.6, 20, (0.6, 3000.0))  # a tie goes to the later checkpoint
    # at a best rate of 1.0 (or 1 of 1) the error is 0: only another perfect score replaces it
    assert not within_noise_of_best((0.95, 3161.0), 1.0, 20, (1.0, 3161.0))
    assert within_noise_of_best((1.0, 3161.0), 1.0, 20, (1.0, 3161.0))
    # 1 clear of 20: error sqrt(0.05 * 0.95 / 20) = 0.0487, so a checkpoint that clears none is not within it
    assert not within_noise_of_best((0.0, 3000.0), 0.05, 20, (0.05, 900.0))
    # before any clear, the farthest mean max x position
    assert within_noise_of_best((0.0, 901.0), 0.0, 20, (0.0, 900.0))
    assert not within_noise_of_best((0.0, 900.0), 0.0, 20, (0.0, 900.0))
    assert within_noise_of_best((0.0, 5.0), 0.0, 20, (-np.inf, -np.inf))


@pytest.mark.parametrize("prefer_later", [True, False])
def test_best_model_zip_is_the_runs_pick(tiny_model, tmp_path, prefer_later):
    # the run's own evaluation of a World 1-1 run (sticky actions, 20 episodes each, 100k steps apart; step k stands
    # for checkpoint 100k k): 0.60 at the 8th, 0.50 and 0.55 after it; then three made up: 0.40, 0.70, 0.60
    rates = [0, 0, 0, 0, 0.10, 0.45, 0.50, 0.60, 0.50, 0.55, 0.40, 0.70, 0.60]
    max_x = [757, 1215, 1809, 2195, 2302, 2715, 2684, 2870, 2621, 2672, 3100, 3000, 2900]
    eval_env = make_mario_env(ENV_ID, n_envs=1)
    callback = MarioEvalCallback(eval_env, best_model_save_path=str(tmp_path), prefer_later=prefer_later, verbose=0)
    tiny_model.set_logger(configure(str(tmp_path), []))
    callback.init_callback(tiny_model)
    saved = []
    for step, (rate, x) in enumerate(zip(rates, max_x, strict=True), start=1):
        clears = [True] * round(20 * rate) + [False] * (20 - round(20 * rate))
        tiny_model.num_timesteps = step
        callback._report(step, MarioEvalResult(clears, [x] * 20, [0.0] * 20, [1] * 20))
        saved.append(DoubleDQN.load(tmp_path / "best_model.zip", device="cpu").num_timesteps)
    eval_env.close()
    # before the first clear the farthest is picked (1..4), then the 0.10 (5), each later one within one error of the
    # best (0.45 -> 0.50 -> 0.60), after the best those within 0.11 of it (0.50, 0.55) but not 0.40, then the new
    # best 0.70 and the 0.60 within 0.10 of it
    if prefer_later:
        assert saved == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 12, 13]
    else:
        assert saved == [1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 8, 12, 12]


@pytest.mark.slow
def test_float16_checkpoints_are_rounded_before_each_evaluation(tmp_path, monkeypatch):
    from sb3_mario import callbacks
    from sb3_mario.weights import holds_float16_numbers

    env = make_mario_env(ENV_ID, n_envs=1, seed=0)
    model = DoubleDQN("CnnPolicy", env, buffer_size=200, learning_starts=20, device="cpu", seed=0,
                      float16_checkpoints=True)  # fmt: skip
    rounded = []

    def evaluate_and_look(evaluated, *args, **kwargs):
        rounded.append(holds_float16_numbers(evaluated.policy))
        return evaluate_mario(evaluated, *args, **kwargs)

    monkeypatch.setattr(callbacks, "evaluate_mario", evaluate_and_look)
    callback = MarioEvalCallback(n_eval_episodes=1, eval_freq=40, best_model_save_path=str(tmp_path), verbose=0)
    model.learn(80, callback=callback)
    env.close()
    # both evaluations (40 steps, and 80, the final model's) played weights of float16 values, as best_model.zip holds
    assert callback.history["timesteps"] == [40, 80] and rounded == [True, True]
