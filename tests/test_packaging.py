"""A plain (non-editable) install carries the zoo configs and the start-up hook."""

import subprocess
import sys
import zipfile
from pathlib import Path

#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_configs_hook_and_type_marker(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, timeout=HANG_LIMIT)  # fmt: skip
    (wheel,) = tmp_path.glob("sb3_mario-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"sb3_mario_hook.pth", "sb3_mario_hook.py", "sb3_mario/py.typed"} <= names
    assert {f"sb3_mario/zoo_configs/{algo}.yml" for algo in ("ddqn", "dqn", "qrdqn")} <= names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=HANG_LIMIT)  # fmt: skip
    code = "import sb3_mario.zoo as z; print(z.default_config('ddqn', 'SuperMarioBros-1-1-v0'))"
    out = subprocess.run([sys.executable, "-c", code], env={"PYTHONPATH": str(target)}, cwd=tmp_path,
                         capture_output=True, text=True, check=True, timeout=HANG_LIMIT).stdout  # fmt: skip
    assert out.strip() == str(target / "sb3_mario" / "zoo_configs" / "ddqn.yml")
