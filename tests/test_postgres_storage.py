"""Several machines sharing one Optuna study: two rl-zoo ``-optimize`` workers on a real PostgreSQL server.

The test starts its own server (Debian's ``postgresql`` package: ``initdb`` and ``pg_ctl``) on a free local port
and stops it afterwards. Where PostgreSQL is not installed it is skipped, except in CI (``CI=true``), where
``.ci/run`` installs it and a missing server is a failure.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real subprocesses or training runs

BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
if not BINARIES and not os.environ.get("CI"):
    pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)", allow_module_level=True)

STUDY = "ddqn-cartpole"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    assert BINARIES, "CI needs PostgreSQL: .ci/run installs Debian's postgresql package"
    bin_dir = Path(BINARIES[-1])
    # the server refuses to run as root: as root, run it as Debian's postgres user, in a folder it owns
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="sb3-mario-pg-"))
    if as_user:
        user = pwd.getpwnam("postgres")
        os.chown(home, user.pw_uid, user.pw_gid)
    data, port = home / "data", free_port()
    pg = [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data)]
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1"
    subprocess.run([*pg, "-o", options, "-l", str(home / "server.log"), "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna"],
                       check=True, capture_output=True)  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*pg, "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def python(code: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def optimize(url: str, cwd: Path) -> subprocess.Popen:
    args = ["-m", "rl_zoo3.train", "--algo", "ddqn", "--env", "CartPole-v1", "-optimize", "--n-trials", "2",
            "--n-jobs", "1", "-n", "400", "--n-evaluations", "1", "--eval-episodes", "2", "--storage", url,
            "--study-name", STUDY, "-f", "logs", "--no-optim-plots"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def test_two_optimize_workers_share_one_study_on_postgresql(postgres_url, tmp_path):
    # as on several machines: the study is created once (two workers creating the tables at the same moment race),
    # then each worker joins it from a folder of its own
    optuna_cli = Path(sys.executable).parent / "optuna"
    subprocess.run([str(optuna_cli), "create-study", "--storage", postgres_url, "--study-name", STUDY,
                    "--direction", "maximize"], check=True, capture_output=True)  # fmt: skip
    folders = [tmp_path / f"worker{k}" for k in range(2)]
    for folder in folders:
        folder.mkdir()
    workers = [optimize(postgres_url, folder) for folder in folders]
    outputs = [worker.communicate()[0] for worker in workers]  # no timeout: a loaded machine is only slower
    for worker, out in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, out[-3000:]
    # both workers ran at the same time against one study: its trials add up
    code = (
        "import optuna\n"
        f"study = optuna.load_study(study_name={STUDY!r}, storage={postgres_url!r})\n"
        "done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]\n"
        "print('complete', len(done), 'best', study.best_trial.number)\n"
    )
    out = python(code, tmp_path)
    assert "complete 4 " in out, out
    # the best trial loads through rl-zoo, as a worker on another machine would load it
    code = (
        "from types import SimpleNamespace\n"
        "from rl_zoo3.exp_manager import ExperimentManager\n"
        "manager = SimpleNamespace(algo='ddqn')  # load_trial reads only the algorithm's name\n"
        f"params = ExperimentManager.load_trial(manager, {postgres_url!r}, {STUDY!r}, trial_id=None, convert=True)\n"
        "print(sorted(params))\n"
    )
    out = python(code, tmp_path)
    assert "'gamma'" in out and "'n_steps'" in out and "'learning_rate'" in out, out
