"""Learning curves of rl-zoo Mario runs, from their checkpoints and monitor logs.

    python scripts/learning_curve.py logs/ddqn/SuperMarioBros-1-1-v0_1 [logs/dqn/SuperMarioBros-1-1-v0_1 ...] \\
        --episodes 20 --out docs/learning_curve.png --csv docs/learning_curve.csv

Each checkpoint (``rl_model_<steps>_steps.zip``, or its ``.pt`` export) is evaluated with
``python -m sb3_mario.evaluate``'s protocol (greedy, seeds 0..N-1, random 0-30 no-op frames), checkpoints in
parallel processes; or, with ``--run-evaluations``, the curve takes the run's own evaluation from its log
(``mario_evaluations.npz``, written by the package's evaluation during training: nothing is played again), each
at the minute its step was reached. Training episodes come from the monitor files (``flag_get`` column, which the
package's zoo configs ask for; episodes that started from a failure state, ``restarted``, count for the steps and
minutes but not for the training clear rate). The figure plots the level-clear rate and the evaluation return
against env steps and against wall-clock minutes.
"""

import argparse
import csv
import json
import multiprocessing
import re
from collections import Counter
from pathlib import Path

import numpy as np

ALGO_NAMES = {"ddqn": "DoubleDQN (sb3-mario)", "dqn": "SB3 DQN", "qrdqn": "QR-DQN (sb3-contrib)"}


def evaluate_checkpoint(job: tuple[str, str, int, str, float | None]) -> dict:
    path, algo, episodes, env_id, sticky_actions = job
    import torch as th

    th.set_num_threads(1)
    from sb3_mario.evaluation import evaluate_pipeline
    from sb3_mario.loading import load_model

    model, pipeline = load_model(path, algo=algo, device="cpu")
    result = evaluate_pipeline(model, pipeline, env_id, n_episodes=episodes, sticky_actions=sticky_actions)
    return {"clear_rate": result.clear_rate, "mean_max_x_pos": result.mean_max_x_pos, "mean_return": result.mean_return}


def monitor_episodes(run: Path) -> tuple[float, list[dict]]:
    """
    :return: the run's start time and its training episodes (end time, agent steps so far, flag_get, and whether it
        started from a failure state: ``DoubleDQN(failure_restarts=...)``, with ``restarted`` in the monitor's
        ``info_keywords``)
    """
    rows, starts = [], []
    for monitor in sorted(run.glob("*.monitor.csv")):
        with open(monitor) as f:
            starts.append(json.loads(f.readline()[1:])["t_start"])
            for row in csv.DictReader(f):
                t, length = starts[-1] + float(row["t"]), int(row["l"])
                restarted = row.get("restarted") == "True"
                rows.append({"t": t, "l": length, "flag": row.get("flag_get") == "True", "restarted": restarted})
    rows.sort(key=lambda r: r["t"])
    start = min(starts) if starts else 0.0
    steps = np.cumsum([r["l"] for r in rows])  # Monitor counts agent steps (it sits beneath the frame skip)
    return start, [
        {"minutes": (r["t"] - start) / 60, "steps": s, "flag": r["flag"], "restarted": r["restarted"]}
        for r, s in zip(rows, steps, strict=True)
    ]


def checkpoint_files(run: Path) -> list[Path]:
    """
    :param run: an rl-zoo run folder
    :return: its checkpoints, SB3 zips or their weights-only exports (``scripts/export_checkpoints.py`` keeps the
        zip's mtime), by step
    """
    found = {p.stem: p for p in run.glob("rl_model_*_steps.pt")} | {p.stem: p for p in run.glob("rl_model_*_steps.zip")}
    return sorted(found.values(), key=checkpoint_step)


def checkpoint_step(path: Path) -> int:
    """:return: the agent steps in a checkpoint's name (``rl_model_<steps>_steps``)"""
    return int(re.findall(r"\d+", path.name)[0])


def checkpoint_minutes(path: Path, start: float) -> float:
    """
    :param path: a checkpoint
    :param start: the run's start time (:func:`monitor_episodes`)
    :return: the minutes of training when it was saved (its file's modification time)
    """
    return (path.stat().st_mtime - start) / 60


def run_evaluations(run: Path, start: float, train: list[dict]) -> list[dict]:
    """
    :param run: an rl-zoo run folder trained with the package's evaluation on
    :param start: the run's start time (:func:`monitor_episodes`)
    :param train: its training episodes (:func:`monitor_episodes`), which date each evaluation's step; where none
        has ended (a short run), the checkpoints' times do
    :return: one point per evaluation in the run's ``mario_evaluations.npz``
    """
    log = run / "mario_evaluations.npz"
    if not log.is_file():
        raise FileNotFoundError(
            f"{log} not found: the run had no evaluation (--eval-freq); leave out --run-evaluations."
        )
    data = np.load(log)
    if train:
        steps, minutes = [e["steps"] for e in train], [e["minutes"] for e in train]
    else:
        checkpoints = checkpoint_files(run)
        steps, minutes = [checkpoint_step(p) for p in checkpoints], [checkpoint_minutes(p, start) for p in checkpoints]
    if not steps:
        raise ValueError(
            f"{run}: no training episode has ended and no checkpoint was saved, so nothing dates the evaluations; "
            "train longer or with --save-freq."
        )
    logged = zip(data["timesteps"], data["clears"], data["max_x_pos"], data["returns"], strict=True)
    return [
        {"run": str(run), "algo": run.parent.name, "steps": int(step),
         "minutes": float(np.interp(step, steps, minutes)), "clear_rate": float(np.mean(clears)),
         "mean_max_x_pos": float(np.mean(x)), "mean_return": float(np.mean(r))}
        for step, clears, x, r in logged
    ]  # fmt: skip


def run_labels(runs: list[Path]) -> dict[Path, str]:
    """:return: each run's legend label: the algorithm, and the seed (rl-zoo's ``args.yml``) where algorithms repeat"""
    from sb3_mario.loading import zoo_arguments

    names = {run: ALGO_NAMES.get(run.parent.name, run.parent.name) for run in runs}
    repeated = {name for name, count in Counter(names.values()).items() if count > 1}
    labels = {}
    for run, name in names.items():
        if name not in repeated:
            labels[run] = name
            continue
        seeds = [zoo_arguments(args.parent).get("seed") for args in sorted(run.glob("*/args.yml"))]
        labels[run] = f"{name}, seed {seeds[0]}" if seeds and seeds[0] is not None else f"{name}, {run.name}"
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="rl-zoo run folders (logs/<algo>/<env>_<n>)")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--env", default="SuperMarioBros-1-1-v0")
    parser.add_argument("--out", default="learning_curve.png")
    parser.add_argument("--csv", default="learning_curve.csv")
    parser.add_argument("--processes", type=int, default=multiprocessing.cpu_count())
    parser.add_argument("--sticky-actions", type=float, default=None, metavar="P",
                        help="evaluate with sticky actions of probability P (default: as trained)")  # fmt: skip
    parser.add_argument("--replot", action="store_true", help="reuse the evaluations in --csv, only redraw")
    parser.add_argument("--run-evaluations", action="store_true",
                        help="plot the runs' own evaluations (mario_evaluations.npz)")  # fmt: skip
    args = parser.parse_args()

    table, curves = [], {}
    labels = run_labels(args.runs)
    done: dict[str, list[dict]] = {}
    if args.replot:
        with open(args.csv) as f:
            for point in csv.DictReader(f):
                numbers = {k: float(v) for k, v in point.items() if k not in ("run", "algo")}
                done.setdefault(point["run"], []).append({**point, **numbers, "steps": int(numbers["steps"])})
    for run in args.runs:
        algo = run.parent.name
        start, episodes = monitor_episodes(run)
        if args.replot:
            table += done[str(run)]
            curves[labels[run]] = (done[str(run)], episodes)
            continue
        if args.run_evaluations:
            points = run_evaluations(run, start, episodes)
            table += points
            curves[labels[run]] = (points, episodes)
            continue
        checkpoints = checkpoint_files(run)
        jobs = [(str(p), algo, args.episodes, args.env, args.sticky_actions) for p in checkpoints]
        with multiprocessing.get_context("spawn").Pool(min(args.processes, max(len(jobs), 1))) as pool:
            results = pool.map(evaluate_checkpoint, jobs)
        points = []
        for path, result in zip(checkpoints, results, strict=True):
            point = {"run": str(run), "algo": algo, "steps": checkpoint_step(path),
                     "minutes": checkpoint_minutes(path, start), **result}  # fmt: skip
            points.append(point)
            table.append(point)
            print(point, flush=True)
        curves[labels[run]] = (points, episodes)
    with open(args.csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    source = "the run's own evaluation" if args.run_evaluations else f"greedy eval, {args.episodes} episodes"
    plot(curves, args.out, source, args.env)


def training_clear_rate(train: list[dict], x: str, window: int = 100) -> tuple[list[float], np.ndarray, int]:
    """
    The clear rate of the training episodes, as a moving average. Episodes that started from a failure state
    (``restarted``) are left out: they did not play the stage from its start.

    :param train: training episodes (:func:`monitor_episodes`)
    :param x: ``"steps"`` or ``"minutes"``
    :param window: episodes per average (fewer where the run has fewer)
    :return: the ``x`` of each episode from the ``window``-th on, the fraction of the last ``window`` episodes that
        cleared, and the window (0: no episode)
    """
    from_start = [e for e in train if not e["restarted"]]
    window = min(window, len(from_start))
    if not window:
        return [], np.zeros(0), 0
    rates = np.convolve([e["flag"] for e in from_start], np.ones(window) / window, mode="valid")
    return [e[x] for e in from_start][window - 1 :], rates, window


def plot(curves: dict, out: str, source: str, env_id: str = "SuperMarioBros-1-1-v0") -> None:
    """
    :param curves: per run label, its evaluated checkpoints and its training episodes
    :param out: the png to write
    :param source: what the checkpoints' points are (for the legend)
    :param env_id: the stage the runs trained on (for the axis label)
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    for label, (points, train) in curves.items():
        for col, x in enumerate(("steps", "minutes")):
            line = axes[0, col].plot([p[x] for p in points], [p["clear_rate"] for p in points], "o-",
                                     label=f"{label}: {source}")[0]  # fmt: skip
            xs, rates, window = training_clear_rate(train, x)
            if window:
                axes[0, col].plot(xs, rates, color=line.get_color(), alpha=0.4,
                                  label=f"{label}: training episodes (last {window})")  # fmt: skip
            axes[1, col].plot([p[x] for p in points], [p["mean_return"] for p in points], "o-", color=line.get_color(),
                              label=label)  # fmt: skip
    axes[0, 0].set_ylabel(f"World {'-'.join(env_id.split('-')[1:3])} clear rate")
    axes[1, 0].set_ylabel("evaluation return (classic reward x 0.1)")
    axes[1, 0].set_xlabel("env steps (agent steps, frame skip 4)")
    axes[1, 1].set_xlabel("training wall-clock (minutes)")
    for ax in axes.ravel():
        ax.grid(alpha=0.3)
    axes[0, 0].axhline(0.9, color="gray", linestyle=":", linewidth=1)
    axes[0, 1].axhline(0.9, color="gray", linestyle=":", linewidth=1)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
