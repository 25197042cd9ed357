"""benchmarks/greedy_margins.py: the rounding of its copies, and its report on the shipped agent."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch as th

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchmarks.greedy_margins import int16_rows, weight_changes  # noqa: E402

#: only stops a process that hangs: a loaded machine is slower, not stuck
HANG_LIMIT = 1800


def test_int16_rows_rounds_each_row_to_its_own_scale():
    weight = th.tensor([[1.0, 0.3, -0.25], [0.0, 0.0, 0.0], [2e-3, -6e-3, 1e-3]])
    rounded = int16_rows(weight)
    # row 0: steps of 1/32767; 0.3 is 9830.1 steps, -0.25 is -8191.75
    assert th.allclose(rounded[0], th.tensor([32767, 9830, -8192]) / 32767, rtol=0, atol=1e-7)
    assert th.equal(rounded[1], th.zeros(3))  # an all-zero row stays zero
    # row 2: steps of 6e-3 / 32767; 2e-3 is 10922.33 steps, 1e-3 is 5461.17
    assert th.allclose(rounded[2], th.tensor([10922, -32767, 5461]) * (6e-3 / 32767), rtol=0, atol=1e-9)


def test_weight_changes_against_another_checkpoint_and_float16(capsys):
    import gymnasium as gym
    from stable_baselines3.dqn.policies import DQNPolicy

    def policy(weight, bias):
        made = DQNPolicy(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Discrete(2), lambda _: 0.0, net_arch=[])
        made.q_net.load_state_dict({"q_net.0.weight": th.tensor(weight), "q_net.0.bias": th.tensor(bias)})
        return made

    one = policy([[1.0, 0.5, 0.1], [0.25, -2.0, 3.0]], [0.0, 0.2])
    # the other checkpoint: two weights moved, by 0.5 and 0.25
    weight_changes(one, policy([[1.5, 0.5, 0.1], [0.25, -2.0, 3.25]], [0.0, 0.2]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "weights to the other checkpoint: 2 of 8 differ, by a median 0.25, at most 0.5"
    # float16 rounds 0.1 to 0.0999755859375 and 0.2 to 0.199951171875; the others are float16 numbers
    assert lines[1] == "weights to float16 rounding: 2 of 8 differ, by a median 2.4e-05, at most 4.9e-05"
    weight_changes(one, one)
    assert capsys.readouterr().out.splitlines()[0] == "weights to the other checkpoint: 0 of 8 differ"


@pytest.mark.slow
def test_the_shipped_agent_already_holds_its_largest_tensor_in_float16():
    """Its first linear layer was shipped as float16, so rounding it to float16 again changes nothing."""
    args = [str(ROOT / "benchmarks" / "greedy_margins.py"), str(ROOT / "models" / "SuperMarioBros-1-1-v0.pt"),
            "--episodes", "1", "--closest", "2"]  # fmt: skip
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=HANG_LIMIT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    steps = re.search(r"^sticky actions 0.0: (\d+) steps; margin of the greedy action: median \S+, ", proc.stdout,
                      flags=re.MULTILINE)  # fmt: skip
    assert steps and int(steps[1]) > 100, proc.stdout  # the agent plays a whole episode of the stage
    assert len(re.findall(r"\(episode 0, step \d+\)", proc.stdout)) == 2, proc.stdout
    assert "float16, the largest tensors: largest Q-value change 0; other greedy actions at 0 steps, none" in (
        proc.stdout
    )
    other = re.search(r"float16, every tensor: largest Q-value change (\S+);", proc.stdout)
    assert other and float(other[1]) > 0, proc.stdout  # the other tensors were float32
