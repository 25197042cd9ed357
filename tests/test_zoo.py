"""rl-zoo entry points, run for real in subprocesses: `python -m rl_zoo3.train --algo ddqn ...` and friends."""

import csv
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch as th
import yaml

from sb3_mario import DoubleDQN
from sb3_mario.weights import holds_float16_numbers, load_weights

#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800

ENV_ID = "SuperMarioBros-1-1-v0"
# a few hundred steps with a small buffer: enough to go through learning, evaluation and saving
TINY = ["-params", "buffer_size:600", "learning_starts:64", "n_envs:2", "gradient_steps:2"]  # a short run, few updates


def run(*args: str, cwd: Path, env: dict | None = None, expect_ok: bool = True) -> str:
    environ = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=HANG_LIMIT
    )
    output = proc.stdout + proc.stderr
    if expect_ok:
        assert proc.returncode == 0, f"{' '.join(args)} failed:\n{output[-4000:]}"
    else:
        assert proc.returncode != 0, f"{' '.join(args)} should have failed:\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def ddqn_run(tmp_path_factory) -> Path:
    """One tiny DoubleDQN training through rl-zoo with TensorBoard, evaluation, checkpoints and the buffer saved."""
    cwd = tmp_path_factory.mktemp("zoo")
    out = run(
        "-m", "rl_zoo3.train", "--algo", "ddqn", "--env", ENV_ID, "-n", "400", "--seed", "0", "-f", "logs",
        "-tb", "tb", "-P", "--eval-freq", "150", "--eval-episodes", "1", "--save-freq", "200",
        "--save-replay-buffer", *TINY, cwd=cwd,
    )  # fmt: skip
    assert "zoo_configs/ddqn.yml" in out.replace(os.sep, "/")
    (cwd / "train.log").write_text(out)
    return cwd


@pytest.mark.slow
def test_train_on_mario_uses_subprocess_envs_and_says_what_takes_time(ddqn_run):
    out = (ddqn_run / "train.log").read_text()
    # no --vec-env given: subprocess envs, said in one plain line, and no fallback warning
    assert "Mario envs run in subprocesses, one per env (pass --vec-env dummy" in out
    assert "async_envs=True needs" not in out
    started = r"starting 2 Mario training envs in subprocesses\.\.\.\n(.*\n)*.*2 Mario training envs ready in"
    assert re.search(started, out)
    assert "evaluating every 150 steps on 1 episodes in 1 worker process(es)" in out
    assert re.search(r"Replay buffer: PrioritizedFrameReplayBuffer, 600 transitions, [0-9.]+ GiB once full", out)
    assert "Learning starts at num_timesteps=" in out


def test_option_given_reads_the_command_line_as_argparse_does():
    from sb3_mario.zoo import eval_workers_for, option_given

    assert option_given(["--algo", "ddqn", "--vec-env", "dummy"], "--vec-env")
    assert option_given(["--vec-env=subproc"], "--vec-env") and option_given(
        ["--eval-episodes", "3"], "--eval-episodes"
    )
    assert option_given(["--vec", "dummy"], "--vec-env")  # argparse's abbreviations
    assert not option_given(["--algo", "ddqn", "--env", ENV_ID, "-P"], "--vec-env")
    assert [eval_workers_for(n) for n in (None, 2, 16, 32, 128)] == [1, 1, 2, 4, 4]


@pytest.mark.slow
def test_bad_hyperparameters_fail_before_any_env_or_folder(tmp_path):
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", ENV_ID, "-f", "logs", "-params", "buffer_size:-5",
              cwd=tmp_path, expect_ok=False)  # fmt: skip
    assert "buffer_size=-5 (must be an integer >= 1)" in out and "--hyperparams" in out
    assert "starting" not in out  # no env was built
    assert not (tmp_path / "logs" / "ddqn" / f"{ENV_ID}_1").exists()


@pytest.mark.slow
def test_a_start_that_fails_later_leaves_no_run_folder(tmp_path):
    # the envs are built and the folder made, then the replay buffer cannot fit in memory
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", ENV_ID, "-f", "logs", "--vec-env", "dummy",
              "-params", "buffer_size:100000000000", "n_envs:1", cwd=tmp_path, expect_ok=False)  # fmt: skip
    assert "MemoryError" in out and "starting 1 Mario training envs in this process" in out
    assert not (tmp_path / "logs" / "ddqn" / f"{ENV_ID}_1").exists()


@pytest.mark.slow
def test_train_writes_model_buffer_checkpoints_and_logs(ddqn_run):
    run_dir = ddqn_run / "logs" / "ddqn" / f"{ENV_ID}_1"
    for name in (f"{ENV_ID}.zip", "replay_buffer.pkl", "best_model.zip", "evaluations.npz", "0.monitor.csv"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("rl_model_*_steps.zip"))
    assert list((ddqn_run / "tb" / ENV_ID).glob("DoubleDQN_1/events.out.tfevents.*"))
    config = (run_dir / ENV_ID / "config.yml").read_text()
    assert "sb3_mario.wrappers.MarioWrapper" in config and "MarioCNN" in config


@pytest.mark.slow
def test_the_mario_config_trains_with_sticky_actions_prioritized_replay_and_restarts(ddqn_run):
    # what the README's "The trained agent" says the main command trains with
    run_dir = ddqn_run / "logs" / "ddqn" / f"{ENV_ID}_1"
    model = DoubleDQN.load(run_dir / f"{ENV_ID}.zip", device="cpu")
    assert (model.failure_restarts, model.failure_restart_steps) == (0.25, 30)
    assert model.replay_buffer_class.__name__ == "PrioritizedFrameReplayBuffer"
    assert model.batch_size == 64 and model._total_timesteps == 400  # -n 400 overrides the config's 1M
    # every model the run saved holds float16 numbers: any of them ships as a float16 file that plays the same
    checkpoint = next(run_dir.glob("rl_model_*_steps.zip"))
    for saved in (model, DoubleDQN.load(run_dir / "best_model.zip", device="cpu"), DoubleDQN.load(checkpoint)):
        assert saved.float16_checkpoints and holds_float16_numbers(saved.policy)
    hyperparams = dict(yaml.load((run_dir / ENV_ID / "config.yml").read_text(), Loader=yaml.UnsafeLoader))
    assert hyperparams["env_wrapper"][0]["sb3_mario.wrappers.MarioWrapper"]["sticky_actions"] == 0.25
    assert hyperparams["n_timesteps"] == 1e6 and hyperparams["learning_rate"] == "lin_2e-4"
    # the monitor logs which episodes restarted, so that training statistics can leave them out
    assert "restarted" in (run_dir / "0.monitor.csv").read_text().splitlines()[1].split(",")


@pytest.mark.slow
def test_continue_training_from_the_saved_model(ddqn_run):
    model = f"logs/ddqn/{ENV_ID}_1/{ENV_ID}.zip"
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", ENV_ID, "-n", "100", "-f", "logs", "-i", model, *TINY,
              cwd=ddqn_run)  # fmt: skip
    assert "Loading pretrained agent" in out
    assert (ddqn_run / "logs" / "ddqn" / f"{ENV_ID}_2" / f"{ENV_ID}.zip").is_file()


@pytest.mark.slow
def test_enjoy_record_video_and_plot(ddqn_run):
    common = ["--algo", "ddqn", "--env", ENV_ID, "-f", "logs", "--exp-id", "1"]
    run("-m", "rl_zoo3.enjoy", *common, "-n", "60", "--no-render", cwd=ddqn_run)
    run("-m", "rl_zoo3.record_video", *common, "-n", "40", "-o", "videos", cwd=ddqn_run)
    assert list((ddqn_run / "videos").glob("*.mp4"))
    # plot_train reads the monitor files and draws with plt.show(): headless, Agg makes show() a no-op
    run("-m", "rl_zoo3.plots.plot_train", "--algo", "ddqn", "--env", ENV_ID, "-f", "logs", cwd=ddqn_run,
        env={"MPLBACKEND": "Agg"})  # fmt: skip


@pytest.mark.slow
def test_sb3_mario_evaluate_on_the_zoo_model(ddqn_run):
    model = f"logs/ddqn/{ENV_ID}_1/{ENV_ID}.zip"
    out = run("-m", "sb3_mario.evaluate", model, "-n", "2", "--noop-max", "30", cwd=ddqn_run)
    assert "episodes=2 clear_rate=" in out and "mean_max_x_pos=" in out and "mean_return=" in out
    # a run folder: its best_model.zip (the run's pick), which rl-zoo's --load-best finds too
    out = run("-m", "sb3_mario.evaluate", f"logs/ddqn/{ENV_ID}_1", "-n", "1", cwd=ddqn_run)
    assert f"logs/ddqn/{ENV_ID}_1/best_model.zip" in out.replace(os.sep, "/") and "episodes=1 clear_rate=" in out
    out = run("-m", "rl_zoo3.enjoy", "--algo", "ddqn", "--env", ENV_ID, "-f", "logs", "--exp-id", "1", "--load-best",
              "-n", "40", "--no-render", cwd=ddqn_run)  # fmt: skip
    assert "best_model.zip" in out


@pytest.mark.parametrize("algo", ["dqn", "qrdqn"])
@pytest.mark.slow
def test_baselines_on_mario(tmp_path, algo):
    # an explicit --vec-env wins over sb3-mario's subprocess default
    out = run("-m", "rl_zoo3.train", "--algo", algo, "--env", ENV_ID, "-n", "200", "-f", "logs", "--vec-env", "dummy",
              *TINY, cwd=tmp_path)  # fmt: skip
    assert f"zoo_configs/{algo}.yml" in out.replace(os.sep, "/")
    assert "starting 2 Mario training envs in this process" in out and "run in subprocesses" not in out
    assert (tmp_path / "logs" / algo / f"{ENV_ID}_1" / f"{ENV_ID}.zip").is_file()


@pytest.mark.slow
def test_ddqn_on_cartpole_and_explicit_entry_point(tmp_path):
    run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", "CartPole-v1", "-n", "600", "-f", "logs", cwd=tmp_path)
    # python -m sb3_mario.train patches rl_zoo3 itself: it works with the start-up hook switched off
    out = run("-m", "sb3_mario.train", "--algo", "ddqn", "--env", "CartPole-v1", "-n", "600", "-f", "logs",
              cwd=tmp_path, env={"SB3_MARIO_NO_ZOO_HOOK": "1"})  # fmt: skip
    assert (tmp_path / "logs" / "ddqn" / "CartPole-v1_2" / "CartPole-v1.zip").is_file(), out


@pytest.mark.slow
def test_users_conf_file_wins(tmp_path):
    conf = tmp_path / "mine.yml"
    conf.write_text(
        "CartPole-v1:\n  policy: 'MlpPolicy'\n  n_timesteps: 300\n  learning_starts: 10\n  buffer_size: 500\n"
    )
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", "CartPole-v1", "-f", "logs", "--conf-file", str(conf),
              cwd=tmp_path)  # fmt: skip
    assert f"Loading hyperparameters from: {conf}" in out


@pytest.mark.slow
def test_optimize_with_a_shared_storage(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    args = ["-m", "rl_zoo3.train", "--algo", "ddqn", "--env", "CartPole-v1", "-optimize", "--n-trials", "2",
            "--n-jobs", "1", "-n", "400", "--n-evaluations", "1", "--eval-episodes", "2", "--storage", storage,
            "--study-name", "ddqn-test", "-f", "logs", "--no-optim-plots"]  # fmt: skip
    out = run(*args, cwd=tmp_path)
    assert re.search(r"Number of finished trials:\s+2\n", out), out[-2000:]
    # a second worker joins the same study through the database
    out = run(*args, cwd=tmp_path)
    assert re.search(r"Number of finished trials:\s+4\n", out), out[-2000:]
    assert "n_steps:" in out and "learning_rate:" in out


@pytest.mark.slow
def test_unknown_env_id_gets_the_zoos_did_you_mean(tmp_path):
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", "SuperMarioBros-1-1-v5", cwd=tmp_path, expect_ok=False)
    assert "you maybe meant SuperMarioBros-1-1-v0" in out


@pytest.mark.slow
def test_hook_can_be_switched_off(tmp_path):
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", "CartPole-v1", cwd=tmp_path,
              env={"SB3_MARIO_NO_ZOO_HOOK": "1"}, expect_ok=False)  # fmt: skip
    assert "invalid choice: 'ddqn'" in out


@pytest.mark.slow
def test_hook_never_breaks_python_when_the_package_is_missing(tmp_path):
    # the hook module present, the package gone (a half-finished uninstall): rl_zoo3 still works, with a warning
    code = (
        "import sys, warnings; sys.modules['sb3_mario'] = None\n"
        "import sb3_mario_hook; sb3_mario_hook.install()\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import rl_zoo3\n"
        "assert 'ddqn' not in rl_zoo3.ALGOS and 'dqn' in rl_zoo3.ALGOS\n"
        "assert any('SB3_MARIO_NO_ZOO_HOOK' in str(w.message) for w in caught)\n"
        "print('ok')\n"
    )
    assert "ok" in run("-c", code, cwd=tmp_path, env={"SB3_MARIO_NO_ZOO_HOOK": "1"})


@pytest.mark.parametrize("algo", ["ddqn", "dqn", "qrdqn"])
def test_configs_cover_every_mario_id(algo):
    import yaml

    from sb3_mario import mario_env_ids
    from sb3_mario.zoo import config_dir, default_config

    sections = yaml.safe_load((config_dir() / f"{algo}.yml").read_text())
    assert set(mario_env_ids()) <= set(sections)
    assert sections["SuperMarioBros-1-1-v0"]["env_wrapper"][0]["sb3_mario.wrappers.MarioWrapper"]["reward"] == "classic"
    assert sections["SuperMarioBros2USA-v0"]["env_wrapper"][0]["sb3_mario.wrappers.MarioWrapper"]["reward"] == "native"
    assert default_config(algo, "SuperMarioBros-1-1-v0") == str(config_dir() / f"{algo}.yml")
    # classic envs keep rl-zoo's own configs, except for ddqn which rl-zoo does not know
    assert default_config(algo, "CartPole-v1") == (str(config_dir() / "ddqn.yml") if algo == "ddqn" else None)


@pytest.mark.parametrize("algo", ["ddqn", "dqn", "qrdqn"])
def test_world_8_4_trains_with_down_and_otherwise_the_1_1_recipe(algo):
    import gymnasium as gym
    from rl_zoo3.utils import get_wrapper_class

    from sb3_mario.zoo import config_dir

    sections = yaml.safe_load((config_dir() / f"{algo}.yml").read_text())
    first = sections["SuperMarioBros-1-1-v0"]
    for env_id in ("SuperMarioBros-8-4-v0", "SuperMarioBros8-4-v0"):
        section = sections[env_id]
        assert {k: v for k, v in section.items() if k != "env_wrapper"} == {
            k: v for k, v in first.items() if k != "env_wrapper"
        }
        kwargs = section["env_wrapper"][0]["sb3_mario.wrappers.MarioWrapper"]
        first_kwargs = first["env_wrapper"][0]["sb3_mario.wrappers.MarioWrapper"]
        assert kwargs == {**first_kwargs, "actions": "complex"}
    # the Lost Levels' 8-4 is another stage of another game: the 1-1 settings
    assert sections["SuperMarioBros2-8-4-v0"] == first
    # the env rl-zoo builds from that section has an action with down
    env = get_wrapper_class(sections["SuperMarioBros-8-4-v0"])(gym.make("SuperMarioBros-8-4-v0"))
    try:
        assert "down" in env.get_wrapper_attr("get_action_meanings")()
        assert env.action_space.n == len(env.get_wrapper_attr("get_action_meanings")()) == 12
    finally:
        env.close()


@pytest.mark.slow
def test_mario_eval_callback_from_a_zoo_yml(tmp_path):
    conf = tmp_path / "with_callback.yml"
    conf.write_text(
        f"{ENV_ID}:\n"
        "  env_wrapper:\n    - sb3_mario.wrappers.MarioWrapper:\n        stuck_steps: 30\n"
        "  frame_stack: 4\n  policy: 'CnnPolicy'\n  n_timesteps: 200\n  buffer_size: 500\n  learning_starts: 50\n"
        "  callback:\n    - sb3_mario.callbacks.MarioEvalCallback:\n"
        "        eval_freq: 100\n        n_eval_episodes: 1\n"
    )
    out = run("-m", "rl_zoo3.train", "--algo", "ddqn", "--env", ENV_ID, "-f", "logs", "--conf-file", str(conf),
              cwd=tmp_path)  # fmt: skip
    # SB3 prints the logger keys grouped: "| eval/ |" then "|    clear_rate |"
    assert out.count("Mario eval num_timesteps=") == 2 and "clear_rate" in out and "mean_max_x_pos" in out


def test_a_run_whose_training_episodes_have_not_ended_dates_its_evaluations_by_its_checkpoints(
    learning_curve, tmp_path
):
    # a short run: the monitor files hold only their header, the evaluations and checkpoints are there
    run = tmp_path / "ddqn" / f"{ENV_ID}_1"
    run.mkdir(parents=True)
    header = '#{"t_start": 1000.0, "env_id": "' + ENV_ID + '"}'
    (run / "0.monitor.csv").write_text(header + "\nr,l,t,flag_get,restarted\n")
    np.savez(run / "mario_evaluations.npz", timesteps=np.array([150, 300]), clears=np.array([[0], [1]]),
             max_x_pos=np.array([[700], [3161]]), returns=np.array([[60.0], [300.0]]),
             lengths=np.array([[90], [300]]))  # fmt: skip
    for steps, seconds in ((200, 1120.0), (400, 1240.0)):  # saved 2 and 4 minutes after the start
        checkpoint = run / f"rl_model_{steps}_steps.pt"
        checkpoint.write_bytes(b"")
        os.utime(checkpoint, (seconds, seconds))
    start, train = learning_curve.monitor_episodes(run)
    assert start == 1000.0 and train == []
    points = learning_curve.run_evaluations(run, start, train)
    assert [p["steps"] for p in points] == [150, 300]
    assert [p["minutes"] for p in points] == [2.0, 3.0]  # before the first checkpoint: its minute; then between them
    assert [p["clear_rate"] for p in points] == [0.0, 1.0]
    for checkpoint in run.glob("rl_model_*"):
        checkpoint.unlink()
    with pytest.raises(ValueError, match="no training episode has ended and no checkpoint was saved"):
        learning_curve.run_evaluations(run, start, train)


@pytest.mark.slow
def test_checkpoints_export_to_weights_and_draw_a_learning_curve(ddqn_run, learning_curve, tmp_path):
    run_dir = ddqn_run / "logs" / "ddqn" / f"{ENV_ID}_1"
    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "out"
    run(str(root / "scripts" / "export_checkpoints.py"), str(run_dir), "--algo", "ddqn", "--out", str(out), "--final",
        cwd=tmp_path)  # fmt: skip
    tars = sorted(out.glob("ddqn_*.tar"))
    # 200 and 400 (the final model is the 400-step one); the run's own pick, best_model.zip, in a tar of its own
    assert [t.name for t in tars] == [f"ddqn_{ENV_ID}_1_200.tar", f"ddqn_{ENV_ID}_1_best.tar"]
    with tarfile.open(tars[1]) as tar:
        assert {"best_model.pt", "best_model.json", "evaluations.npz"} <= set(tar.getnames())
    curve_run = tmp_path / "curve" / "ddqn" / f"{ENV_ID}_1"
    curve_run.mkdir(parents=True)
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
        tar.extractall(curve_run, filter="data")
    for name in ("rl_model_200_steps.pt", "rl_model_200_steps.json", "rl_model_400_steps.pt", "0.monitor.csv",
                 f"{ENV_ID}/config.yml", f"{ENV_ID}/args.yml"):  # fmt: skip
        assert name in names, name
    # the package's config saves float16 numbers, so the checkpoints travel as float16, the same numbers
    stored = th.load(curve_run / "rl_model_200_steps.pt", weights_only=True)
    assert {v.dtype for v in stored.values() if v.is_floating_point()} == {th.float16}
    exported_policy, exported_config = load_weights(curve_run / "rl_model_200_steps.pt")
    saved = DoubleDQN.load(run_dir / "rl_model_200_steps.zip", device="cpu").q_net.state_dict()
    assert exported_config["dtype"] == "float16"
    assert all(th.equal(v, saved[k]) for k, v in exported_policy.q_net.state_dict().items())
    zip_mtime = (run_dir / "rl_model_200_steps.zip").stat().st_mtime
    assert abs((curve_run / "rl_model_200_steps.pt").stat().st_mtime - zip_mtime) < 1
    csv_path, png = tmp_path / "curve.csv", tmp_path / "curve.png"
    script = str(root / "scripts" / "learning_curve.py")
    run(script, str(curve_run), "--episodes", "1", "--processes", "1", "--csv", str(csv_path), "--out", str(png),
        cwd=tmp_path)  # fmt: skip
    rows = list(csv.DictReader(csv_path.open()))
    assert [int(r["steps"]) for r in rows] == [200, 400]
    assert all(0 <= float(r["clear_rate"]) <= 1 and float(r["mean_max_x_pos"]) > 0 for r in rows)
    assert png.read_bytes()[:4] == b"\x89PNG"
    png.unlink()
    run(script, str(curve_run), "--replot", "--csv", str(csv_path), "--out", str(png), cwd=tmp_path)
    assert png.is_file() and list(csv.DictReader(csv_path.open())) == rows
    # the run's own evaluation, read from its log, each at the minute its step was reached: nothing played again
    own_csv = tmp_path / "own.csv"
    run(script, str(run_dir), "--run-evaluations", "--csv", str(own_csv), "--out", str(png), cwd=tmp_path)
    log = np.load(run_dir / "mario_evaluations.npz")
    own = list(csv.DictReader(own_csv.open()))
    assert [int(r["steps"]) for r in own] == log["timesteps"].tolist()
    assert [float(r["clear_rate"]) for r in own] == [float(np.mean(c)) for c in log["clears"]]
    assert [float(r["mean_max_x_pos"]) for r in own] == [float(np.mean(x)) for x in log["max_x_pos"]]
    minutes = [float(r["minutes"]) for r in own]
    assert minutes == sorted(minutes) and minutes[0] > 0
    # a run without the package's evaluation says so
    bare = tmp_path / "bare" / "ddqn" / f"{ENV_ID}_1"
    shutil.copytree(curve_run, bare)
    (bare / "mario_evaluations.npz").unlink()
    out = run(script, str(bare), "--run-evaluations", "--csv", str(own_csv), "--out", str(png), cwd=tmp_path,
              expect_ok=False)  # fmt: skip
    assert "mario_evaluations.npz not found: the run had no evaluation (--eval-freq)" in out
    # two runs of one algorithm: the legend tells them apart by the seed in rl-zoo's args.yml
    other = curve_run.parent / f"{ENV_ID}_2"
    shutil.copytree(curve_run, other)
    args_file = other / ENV_ID / "args.yml"
    args = yaml.load(args_file.read_text(), Loader=yaml.UnsafeLoader)  # rl-zoo's OrderedDict of the arguments
    seed, args["seed"] = args["seed"], 7
    args_file.write_text(yaml.dump(args))
    assert learning_curve.run_labels([curve_run]) == {curve_run: "DoubleDQN (sb3-mario)"}
    assert learning_curve.run_labels([curve_run, other]) == {
        curve_run: f"DoubleDQN (sb3-mario), seed {seed}",
        other: "DoubleDQN (sb3-mario), seed 7",
    }


@pytest.mark.slow
def test_export_fills_out_up_to_its_limits_and_leaves_the_rest_for_the_next_call(ddqn_run, tmp_path):
    run_dir = tmp_path / "copy" / f"{ENV_ID}_1"  # tars are named by run folder
    shutil.copytree(ddqn_run / "logs" / "ddqn" / f"{ENV_ID}_1", run_dir, ignore=shutil.ignore_patterns("exported"))
    script = str(Path(__file__).resolve().parent.parent / "scripts" / "export_checkpoints.py")
    out = tmp_path / "out"
    out.mkdir()
    (out / "already.there").write_bytes(b"x")  # what --out holds counts

    def export(*limits: str) -> str:
        return run(script, str(run_dir), "--algo", "ddqn", "--out", str(out), "--final", *limits, cwd=tmp_path)

    # room for one more file: the tar of 200 and 400; the run's pick waits
    said = export("--max-files", "2")
    assert sorted(p.name for p in out.glob("*.tar")) == [f"ddqn_{ENV_ID}_1_200.tar"]
    assert "left for the next export (--max-files, --max-mib): ['best_model.zip']" in said
    # too few bytes for it: nothing written, nothing marked as exported
    said = export("--max-files", "3", "--max-mib", "0.01")
    assert len(list(out.glob("*.tar"))) == 1 and not (run_dir / "exported" / "best_model.pt").exists()
    assert "['best_model.zip']" in said
    # with room, the next call brings it; the checkpoints already exported are not packed again
    said = export("--max-files", "3")
    assert sorted(p.name for p in out.glob("*.tar")) == [f"ddqn_{ENV_ID}_1_200.tar", f"ddqn_{ENV_ID}_1_best.tar"]
    assert "left for the next export" not in said
    with tarfile.open(out / f"ddqn_{ENV_ID}_1_best.tar") as tar:
        assert "best_model.pt" in tar.getnames() and "rl_model_200_steps.pt" not in tar.getnames()


@pytest.mark.slow
def test_stage_results_row_is_the_evaluation_of_the_runs_pick(ddqn_run, tmp_path):
    run_dir = ddqn_run / "logs" / "ddqn" / f"{ENV_ID}_1"
    script = str(Path(__file__).resolve().parent.parent / "scripts" / "stage_results.py")
    results = tmp_path / "results.csv"
    add = [script, "--csv", str(results), "add", str(run_dir / "best_model.zip"), "--run", str(run_dir), "--episodes",
           "2", "--seed", "0", "--card", "2-core CPU", "--date", "2026-12-02", "--command", "tiny run"]  # fmt: skip
    run(*add, cwd=tmp_path)
    run(*add, cwd=tmp_path)  # the same stage and seed again: its row is replaced, not added
    rows = list(csv.DictReader(results.open()))
    picked = DoubleDQN.load(run_dir / "best_model.zip", device="cpu")
    assert len(rows) == 1 and rows[0]["stage"] == "1-1" and int(rows[0]["steps"]) == picked.num_timesteps
    # the row holds what `python -m sb3_mario.evaluate` prints for the same model and seeds, without sticky actions
    out = run("-m", "sb3_mario.evaluate", str(run_dir / "best_model.zip"), "-n", "2", "--sticky-actions", "0",
              cwd=tmp_path)  # fmt: skip
    summary = re.search(r"clear_rate=\S+ \((\d+)/2\) mean_max_x_pos=([\d.]+) mean_return=([-\d.]+)", out)
    assert summary is not None, out
    assert rows[0]["clears"] == summary[1] and round(float(summary[2])) == int(rows[0]["mean_max_x"])
    assert abs(float(rows[0]["mean_return"]) - float(summary[3])) < 0.06
    sticky = run("-m", "sb3_mario.evaluate", str(run_dir / "best_model.zip"), "-n", "2", "--sticky-actions", "0.25",
                 cwd=tmp_path)  # fmt: skip
    assert f"({rows[0]['sticky_clears']}/2)" in sticky
    # minutes: from the run's first monitor line to the model file
    assert 0 < float(rows[0]["minutes"]) < 60
    markdown, png = tmp_path / "results.md", tmp_path / "results.png"
    markdown.write_text("# Results\n\nno markers\n")
    out = run(script, "--csv", str(results), "render", "--markdown", str(markdown), "--png", str(png), cwd=tmp_path,
              expect_ok=False)  # fmt: skip
    assert "has no <!-- stage table" in out and markdown.read_text() == "# Results\n\nno markers\n"
    begin, end = "<!-- stage table (scripts/stage_results.py render) -->", "<!-- end of stage table -->"
    markdown.write_text(f"# Results\n\n{begin}\nold\n{end}\n\nafter\n")
    run(script, "--csv", str(results), "render", "--markdown", str(markdown), "--png", str(png), cwd=tmp_path)
    text = markdown.read_text()
    assert "old" not in text and text.endswith(f"{end}\n\nafter\n") and "| 1-1 | " in text and "`tiny run`" in text
    assert png.read_bytes()[:4] == b"\x89PNG"
