"""Cost of the rl-zoo start-up hook: `python -c pass` with the hook on and switched off, same interpreter.

    .venv/bin/python benchmarks/hook_startup.py [runs]

Runs alternate (on, off, on, off, ...) so that drift of the machine hits both alike; prints the medians and
their difference. Target: under 20 ms.
"""

import os
import statistics
import subprocess
import sys
import time


def once(hook: bool) -> float:
    env = dict(os.environ)
    env.pop("SB3_MARIO_NO_ZOO_HOOK", None)
    if not hook:
        env["SB3_MARIO_NO_ZOO_HOOK"] = "1"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)
    return time.perf_counter() - start


def main(runs: int = 40) -> None:
    on, off = [], []
    for _ in range(runs):
        on.append(once(True))
        off.append(once(False))
    on_ms, off_ms = statistics.median(on) * 1e3, statistics.median(off) * 1e3
    print(f"python -c pass, median of {runs} runs each: hook on {on_ms:.1f} ms, hook off {off_ms:.1f} ms")
    print(f"hook cost: {on_ms - off_ms:+.1f} ms ({on_ms / off_ms:.3f}x)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
