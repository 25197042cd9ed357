"""benchmarks/exploration_reach.py on the shipped agent: with epsilon 0, both kinds play the greedy agent."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800


@pytest.mark.slow
def test_without_exploration_both_rows_play_the_greedy_agent():
    args = [str(ROOT / "benchmarks" / "exploration_reach.py"), str(ROOT / "models" / "SuperMarioBros-1-1-v0.pt"),
            "--episodes", "2", "--epsilon", "0", "--past", "1000"]  # fmt: skip
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=HANG_LIMIT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = re.findall(r"^\| (epsilon-greedy|ez-greedy, mu 2) \| 0 \| (\d+) \(.*\) \| ([\d,]+) \| (\d+) \|$",
                      proc.stdout, flags=re.MULTILINE)  # fmt: skip
    assert [row[0] for row in rows] == ["epsilon-greedy", "ez-greedy, mu 2"], proc.stdout
    assert rows[0][1:] == rows[1][1:], "the same greedy episodes"
    assert int(rows[0][1]) == 2 and int(rows[0][2].replace(",", "")) > 1000  # the shipped agent gets past x 1000
