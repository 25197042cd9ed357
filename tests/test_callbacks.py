"""MarioEvalCallback and evaluation on the real Mario VecEnv."""

import numpy as np
import pytest
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import configure

from sb3_mario import DoubleDQN, MarioEvalCallback, evaluate_mario, make_mario_env

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
    # best_model.zip is the checkpoint with the best (clear rate, mean max x): played again in this process on the
    # same seeds, it gives what the workers reported
    history = zip(callback.history["clears"], callback.history["max_x_pos"], strict=True)
    scores = [(np.mean(c), np.mean(x)) for c, x in history]
    k = max(range(3), key=lambda i: scores[i])
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
