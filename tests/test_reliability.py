"""Nothing lost: interrupt and resume, atomic saves, memory checked up front, crashed workers, determinism."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback
from stable_baselines3.common.envs import FakeImageEnv

from sb3_mario import DoubleDQN, make_mario_env
from sb3_mario.files import atomic_write
from sb3_mario.memory import check_replay_memory
from sb3_mario.resume import STATE_FILE, learn_resumable, resume_learning

pytestmark = pytest.mark.slow  # real subprocesses or training runs

#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800

ENV_ID = "SuperMarioBros-1-1-v0"
ROOT = Path(__file__).resolve().parent.parent


def mario_model(seed: int = 0, **kwargs) -> DoubleDQN:
    env = make_mario_env(ENV_ID, n_envs=1, seed=seed)
    params = dict(buffer_size=1000, learning_starts=100, exploration_fraction=0.5, target_update_interval=50)
    params.update(kwargs)
    return DoubleDQN("CnnPolicy", env, device="cpu", seed=seed, **params)


class At(BaseCallback):
    """Runs ``action`` once, when num_timesteps reaches ``step``."""

    def __init__(self, step: int, action) -> None:
        super().__init__()
        self.step, self.action = step, action

    def _on_step(self) -> bool:
        if self.num_timesteps == self.step:
            self.action(self)
        return True


class Schedule(BaseCallback):
    """Records (num_timesteps, exploration rate, learning rate) at every step."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, float, float]] = []

    def _on_step(self) -> bool:
        lr = self.model.lr_schedule(self.model._current_progress_remaining)
        self.rows.append((self.num_timesteps, self.model.exploration_rate, lr))
        return True


def test_sigterm_saves_the_run_and_resume_continues_like_an_uninterrupted_run(tmp_path):
    total, stop = 400, 248  # stop on a rollout boundary (train_freq=4), as the uninterrupted run passes it
    linear_lr = lambda progress_remaining: 1e-4 * progress_remaining  # noqa: E731
    reference, reference_schedule = mario_model(learning_rate=linear_lr), Schedule()
    reference.learn(total, callback=reference_schedule)

    model = mario_model(learning_rate=linear_lr)
    sigterm = At(stop, lambda cb: os.kill(os.getpid(), signal.SIGTERM))
    with pytest.raises(KeyboardInterrupt):
        learn_resumable(model, total, tmp_path, callback=sigterm)
    assert {p.name for p in tmp_path.iterdir()} == {"model.zip", "replay_buffer.pkl", STATE_FILE}
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after learn
    assert DoubleDQN.load(tmp_path / "model.zip").num_timesteps == stop

    schedule = Schedule()
    resumed = resume_learning(tmp_path, make_mario_env(ENV_ID, n_envs=1, seed=0), callback=schedule)
    assert resumed.num_timesteps == reference.num_timesteps == total
    # same schedule position: exploration and learning rates equal the uninterrupted run's at each step
    expected = {row[0]: row[1:] for row in reference_schedule.rows}
    assert schedule.rows[0][0] == stop + 1
    # (the interrupt arrived inside step `stop`, before SB3 updated its progress for it: the first resumed
    # step still sees the progress of step stop - 1; from the next one on, the schedules are the same)
    for step, eps, lr in schedule.rows[1:]:
        assert (eps, lr) == pytest.approx(expected[step]), step
    # the step in flight when the signal came is dropped: its transition, its target-update tick and the
    # gradient step due at the end of its rollout
    assert resumed._n_calls == reference._n_calls - 1
    assert resumed._n_updates == reference._n_updates - 1
    assert resumed.replay_buffer.pos == reference.replay_buffer.pos - 1 == total - 1
    # every transition stored before the interrupt was saved and restored: identical to the uninterrupted run's
    kept = stop - 1
    assert np.array_equal(resumed.replay_buffer.observations[:kept], reference.replay_buffer.observations[:kept])
    assert np.array_equal(resumed.replay_buffer.actions[:kept], reference.replay_buffer.actions[:kept])
    assert np.array_equal(resumed.replay_buffer.rewards[:kept], reference.replay_buffer.rewards[:kept])
    assert not (tmp_path / STATE_FILE).exists()


def test_two_cpu_runs_with_one_seed_are_identical():
    class Losses(BaseCallback):
        def __init__(self):
            super().__init__()
            self.losses = []

        def _on_step(self):
            self.losses.append(self.model.logger.name_to_value.get("train/loss"))
            return True

    runs = []
    for _ in range(2):
        model, losses = mario_model(seed=3, learning_starts=50), Losses()
        model.learn(200, callback=losses)
        runs.append((model.replay_buffer.actions[:200].copy(), losses.losses, model.q_net.state_dict()))
    (actions_a, losses_a, params_a), (actions_b, losses_b, params_b) = runs
    assert np.array_equal(actions_a, actions_b) and len(set(actions_a.ravel())) > 1
    assert losses_a == losses_b and any(loss is not None for loss in losses_a)
    assert all(th.equal(params_a[k], params_b[k]) for k in params_a)


def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.zip"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]


def test_a_process_killed_mid_save_leaves_the_last_replay_buffer_intact(tmp_path):
    script = (
        "import sys; from stable_baselines3.common.envs import FakeImageEnv; from sb3_mario import DoubleDQN\n"
        "import numpy as np\n"
        "m = DoubleDQN('CnnPolicy', FakeImageEnv(n_channels=4, discrete=True), buffer_size=3000, device='cpu')\n"
        "m.replay_buffer.observations[:] = 7; m.replay_buffer.pos = 3000\n"
        "m.save_replay_buffer(sys.argv[1]); print('saved', flush=True)\n"
        "m.replay_buffer.observations[:] = 9\n"
        "while True: m.save_replay_buffer(sys.argv[1])\n"
    )
    path = tmp_path / "replay_buffer.pkl"
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "saved"
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".replay_buffer.pkl.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert list(tmp_path.glob(".replay_buffer.pkl.*.tmp")), "the second save never started"
        proc.kill()  # SIGKILL in the middle of writing the temporary file
    finally:
        proc.kill()
        proc.wait()
    model = DoubleDQN("CnnPolicy", FakeImageEnv(n_channels=4, discrete=True), buffer_size=64, device="cpu")
    model.load_replay_buffer(path)
    assert model.replay_buffer.pos == 3000
    assert set(np.unique(model.replay_buffer.observations[:5])) <= {7, 9}  # a whole buffer, old or new


def test_replay_buffer_too_big_for_ram_stops_at_start():
    with pytest.raises(MemoryError, match=r"buffer_size=100000000\) needs .* GiB .* only .* available.*buffer_size"):
        DoubleDQN("CnnPolicy", FakeImageEnv(n_channels=4, discrete=True), buffer_size=100_000_000, device="cpu")
    check_replay_memory(needed=10, buffer_size=1, available=11)
    with pytest.raises(MemoryError, match="needs 0.00 GiB \\(12 bytes\\) of GPU memory"):
        check_replay_memory(needed=12, buffer_size=1, available=11, where="GPU memory")


def test_a_crashed_env_worker_names_the_env_and_step_and_checkpoints_stay_usable(tmp_path):
    env = make_mario_env(ENV_ID, n_envs=2, seed=0, vec_env_cls="subproc")
    model = DoubleDQN("CnnPolicy", env, buffer_size=500, learning_starts=50, device="cpu", seed=0)
    kill = At(160, lambda cb: os.kill(env.unwrapped.processes[0].pid, signal.SIGKILL))
    checkpoints = CheckpointCallback(save_freq=40, save_path=str(tmp_path), name_prefix="ckpt")
    with pytest.raises(RuntimeError, match=rf"\({ENV_ID}\) died at num_timesteps=16\d.*resume from the latest"):
        model.learn(1000, callback=[checkpoints, kill])
    latest = max(tmp_path.glob("ckpt_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1]))
    assert DoubleDQN.load(latest).num_timesteps == int(latest.stem.split("_")[1])
    for process in env.unwrapped.processes:  # the surviving worker, which close() could not reach
        process.kill()


def run_zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rl_zoo3.train", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=HANG_LIMIT, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip


@pytest.mark.parametrize(
    "section, message",
    [
        (
            "  policy: 'CnnPolicy'\n  n_timesteps: 100\n  buffer_sise: 100\n",
            r"Unknown hyperparameter\(s\) \['buffer_sise'\]",
        ),
        (
            "  policy: 'CnnPolicy'\n  n_timesteps: 100\n  buffer_size: -1\n",
            r"buffer_size=-1 \(must be an integer >= 1\)",
        ),
        ("  policy: 'CnnPolicy'\n  n_timesteps: 100\n  buffer_size: 16\n  batch_size: 32\n", "larger than buffer_size"),
    ],
)
def test_bad_zoo_hyperparameters_get_clear_errors(tmp_path, section, message):
    wrapper = "  env_wrapper:\n    - sb3_mario.wrappers.MarioWrapper\n  frame_stack: 4\n"
    (tmp_path / "bad.yml").write_text(f"{ENV_ID}:\n{wrapper}{section}")
    proc = run_zoo("--algo", "ddqn", "--env", ENV_ID, "--conf-file", "bad.yml", cwd=tmp_path)
    assert proc.returncode != 0
    import re

    assert re.search(message, proc.stderr), proc.stderr[-3000:]


WORKER_PARENT = """
import multiprocessing as mp, os, time
from sb3_mario.worker_signals import shield_worker

def work(queue):
    shield_worker()
    queue.put((os.getpid(), os.getpgid(0)))
    time.sleep(3600)

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    for _ in range(2):
        worker = ctx.Process(target=work, args=(queue,), daemon=True)
        worker.start()
        pid, pgid = queue.get()
        print(pid, pgid, os.getpgid(0), flush=True)
    worker.terminate()  # the parent's own SIGTERM still ends a worker
    worker.join()
    print(worker.exitcode, flush=True)
    time.sleep(3600)
"""


def test_a_worker_leaves_the_trainers_process_group_and_ends_with_the_trainer(tmp_path):
    (tmp_path / "parent.py").write_text(WORKER_PARENT)
    proc = subprocess.Popen([sys.executable, "parent.py"], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)  # fmt: skip
    assert proc.stdout is not None
    first, second = (proc.stdout.readline().split() for _ in range(2))
    assert proc.stdout.readline().strip() == str(-signal.SIGTERM)
    for pid, pgid, parent_group in (first, second):
        assert pgid == pid != parent_group  # signals to the trainer's group (Ctrl-C, `timeout`) miss the worker
    os.kill(proc.pid, signal.SIGKILL)  # a trainer that cannot clean up: its worker must not outlive it
    proc.wait()
    deadline = time.monotonic() + HANG_LIMIT
    while running(int(first[0])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(int(first[0]))


def running(pid: int) -> bool:
    """:return: whether the process exists and has not ended (a zombie that nobody reaped has ended)"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_zoo_run_killed_with_sigterm_saves_and_resumes(tmp_path):
    # subprocess envs: the zoo config's async_envs path, with env steps in flight when the signal comes. The signal
    # goes to the whole process group, env and evaluation workers included, as `timeout` and `kill -- -PGID` send it
    total = 400  # the first checkpoint comes at 100 steps: SIGTERM well before the end, a short resume after it
    tiny = ["-params", "buffer_size:600", "learning_starts:64", "n_envs:2", "gradient_steps:2", f"n_timesteps:{total}"]
    args = ["-m", "rl_zoo3.train", "--algo", "ddqn", "--env", ENV_ID, "-f", "logs", "--save-freq", "100",
            "--vec-env", "subproc", *tiny]  # fmt: skip
    proc = subprocess.Popen([sys.executable, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)  # fmt: skip
    run_dir = tmp_path / "logs" / "ddqn" / f"{ENV_ID}_1"
    deadline = time.monotonic() + HANG_LIMIT
    while not list(run_dir.glob("rl_model_*_steps.zip")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=HANG_LIMIT)
    assert proc.returncode == 0, out[-3000:]
    assert "Interrupted:" in out and "Saving replay buffer" in out
    for name in (f"{ENV_ID}.zip", "replay_buffer.pkl", STATE_FILE):
        assert (run_dir / name).is_file(), name
    assert not list(run_dir.glob("mario-eval-*")), "the evaluation's checkpoints in flight are cleaned up"
    stopped_at = DoubleDQN.load(run_dir / f"{ENV_ID}.zip").num_timesteps
    assert 0 < stopped_at < total

    resume = run_zoo(*args[2:], "-i", str(run_dir / f"{ENV_ID}.zip"), cwd=tmp_path)
    assert resume.returncode == 0, resume.stderr[-3000:]
    assert (
        f"Resuming an interrupted run at num_timesteps={stopped_at}: {total - stopped_at} steps left" in resume.stdout
    )
    assert "Loading replay buffer" in resume.stdout
    final = DoubleDQN.load(tmp_path / "logs" / "ddqn" / f"{ENV_ID}_2" / f"{ENV_ID}.zip")
    assert final.num_timesteps == total
