"""The stage-by-stage results table of docs/results.md and its picture, from the package's own evaluation.

    python scripts/stage_results.py add <run>/best_model.pt --run <run> --seed 0 --card "NVIDIA H200, 16 cores" \\
        --date 2026-12-02 --command "python -m sb3_mario.train --algo ddqn --env SuperMarioBros-1-2-v0 --seed 0"
    python scripts/stage_results.py add models/SuperMarioBros-1-1-v0.pt --minutes 24.3 ...
    python scripts/stage_results.py render

``add`` plays the model as ``python -m sb3_mario.evaluate`` does (greedy, 20 episodes, seeds 0..19, random 0-30
no-op frames) without sticky actions, also for a model trained with them, then again with sticky actions 0.25, and
writes the stage's row of ``docs/results.csv`` (an earlier row of the same stage and seed is replaced). The training
minutes are the model file's time since the run's first monitor line (``--run``; exported weights keep their zip's
time), or ``--minutes``. ``render`` rewrites the table between the markers in ``docs/results.md`` and draws
``docs/results.png``: the clear rate of every stage tried, one panel per world.
"""

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from sb3_mario.evaluation import evaluate_pipeline
from sb3_mario.loading import load_model

DOCS = Path(__file__).resolve().parent.parent / "docs"
COLUMNS = ["stage", "env_id", "episodes", "clears", "sticky_clears", "sticky_mean_max_x", "mean_max_x", "clear_x",
           "mean_return", "misses_stop_at", "steps", "minutes", "card", "seed", "command", "date"]  # fmt: skip
BEGIN, END = "<!-- stage table (scripts/stage_results.py render) -->", "<!-- end of stage table -->"
STICKY = 0.25


def run_start(run: Path) -> float:
    """
    :param run: an rl-zoo run folder
    :return: the earliest ``t_start`` of its monitor files (the run's start, in seconds since the epoch)
    """
    starts = [json.loads(path.open().readline()[1:])["t_start"] for path in run.glob("*.monitor.csv")]
    if not starts:
        raise FileNotFoundError(f"No *.monitor.csv in {run}: pass --minutes instead of --run.")
    return min(starts)


def add(args: argparse.Namespace) -> dict[str, Any]:
    """
    :param args: the ``add`` command's arguments
    :return: the row written to the csv
    """
    model, pipeline = load_model(args.model, algo=args.algo, device="cpu")
    env_id = args.env or pipeline.get("env_id")
    if not env_id:
        raise ValueError(f"{args.model} does not name its env id: pass --env.")
    if args.minutes is None and args.run is None:
        raise ValueError("Pass --run <rl-zoo run folder> (minutes from its monitor files) or --minutes.")
    minutes = args.minutes if args.minutes is not None else (args.model.stat().st_mtime - run_start(args.run)) / 60
    # an SB3 model counts its steps; exported weights carry the count in their json
    steps = model.num_timesteps if hasattr(model, "num_timesteps") else pipeline["num_timesteps"]
    plain = evaluate_pipeline(model, pipeline, env_id, n_episodes=args.episodes, sticky_actions=0.0)
    sticky = evaluate_pipeline(model, pipeline, env_id, n_episodes=args.episodes, sticky_actions=STICKY)
    cleared_x = [x for x, clear in zip(plain.max_x_pos, plain.clears, strict=True) if clear]
    row = {
        "stage": "-".join(env_id.split("-")[1:3]),
        "env_id": env_id,
        "episodes": args.episodes,
        "clears": sum(plain.clears),
        "sticky_clears": sum(sticky.clears),
        "sticky_mean_max_x": round(sticky.mean_max_x_pos),
        "mean_max_x": round(plain.mean_max_x_pos),
        "clear_x": min(cleared_x) if cleared_x else "",
        "mean_return": round(plain.mean_return, 1),
        "misses_stop_at": " ".join(f"{x}-{x + 15}:{n}" for x, n in plain.stops()[:3]),
        "steps": steps,
        "minutes": round(minutes, 1),
        "card": args.card,
        "seed": args.seed,
        "command": args.command,
        "date": args.date,
    }
    rows = [r for r in read_rows(args.csv) if (r["stage"], str(r["seed"])) != (row["stage"], str(row["seed"]))]
    write_rows(args.csv, [*rows, row])
    print(row)
    return row


def read_rows(path: Path) -> list[dict[str, Any]]:
    """
    :param path: the results csv
    :return: its rows (none if it does not exist)
    """
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """
    :param path: the results csv
    :param rows: its rows, written in stage order
    """
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: (stage_key(r["stage"]), int(r["seed"]))))


def stage_key(stage: str) -> tuple[int, int]:
    """
    :param stage: ``"world-stage"``, e.g. ``"1-2"``
    :return: a sort key
    """
    world, number = stage.split("-")
    return int(world), int(number)


def table(rows: list[dict[str, Any]]) -> str:
    """
    :param rows: the csv rows
    :return: the markdown table
    """
    header = (
        "| stage | clear rate | with sticky actions 0.25 | mean max x / x at the clear | mean return | "
        "where the misses stop (x: episodes) | agent steps | training minutes | card | seed | command | date |"
    )
    lines = [header, "|" + " --- |" * header.count(" | ") + " --- |"]
    for r in rows:
        n, clears, sticky = int(r["episodes"]), int(r["clears"]), int(r["sticky_clears"])
        rate = f"{clears / n:.2f} ({clears}/{n})"
        rate = f"**{rate}**" if clears / n >= 0.9 else rate
        stops = ", ".join(stop.replace(":", " (") + ")" for stop in r["misses_stop_at"].split()) or "-"
        steps = f"{int(r['steps']) / 1e6:.2f}M"
        clear_x = f"{int(r['clear_x']):,}" if r["clear_x"] else "not reached"
        lines.append(
            f"| {r['stage']} | {rate} | {sticky / n:.2f} ({sticky}/{n}), mean max x {int(r['sticky_mean_max_x']):,} | "
            f"{int(r['mean_max_x']):,} / {clear_x} | {r['mean_return']} | {stops} | {steps} | {r['minutes']} | "
            f"{r['card']} | {r['seed']} | `{r['command']}` | {r['date']} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], out: Path) -> None:
    """
    :param rows: the csv rows
    :param out: the png to draw: one panel per world, the clear rate of its four stages (with and without sticky
        actions); stages not tried, and those that cleared nothing, are marked so
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colors = {"greedy": "tab:blue", f"greedy, sticky actions {STICKY}": "tab:orange"}
    worlds = sorted({stage_key(r["stage"])[0] for r in rows})
    fig, axes = plt.subplots(1, len(worlds), figsize=(4 * len(worlds), 3), squeeze=False)
    for ax, world in zip(axes[0], worlds, strict=True):
        for k in range(4):
            tried = [r for r in rows if r["stage"] == f"{world}-{k + 1}"]
            if not tried:
                ax.text(k, 0.05, "not\ntried", ha="center", fontsize=8, color="gray")
                continue
            n = int(tried[-1]["episodes"])
            rates = int(tried[-1]["clears"]) / n, int(tried[-1]["sticky_clears"]) / n
            for offset, rate, color in zip((-0.2, 0.2), rates, colors.values(), strict=True):
                ax.bar(k + offset, rate, 0.4, color=color)
            if not any(rates):  # tried, and no bar to see: say so
                ax.text(k, 0.05, "0 of\n" + str(n), ha="center", fontsize=8, color="black")
        ax.axhline(0.9, color="gray", lw=0.8, ls="--")
        ax.set_xticks(range(4), [f"{world}-{k + 1}" for k in range(4)])
        ax.set_xlim(-0.6, 3.6)
        ax.set_ylim(0, 1)
        ax.set_title(f"World {world}")
        ax.set_ylabel("clear rate (20 episodes)")
    handles = [Patch(color=color, label=label) for label, color in colors.items()]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out, dpi=100)


def render(args: argparse.Namespace) -> None:
    """
    :param args: the ``render`` command's arguments
    """
    rows = read_rows(args.csv)
    text = args.markdown.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{args.markdown} has no {BEGIN} ... {END} markers to put the table between.")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    args.markdown.write_text(f"{head}{BEGIN}\n{table(rows)}\n{END}{tail}")
    plot(rows, args.png)
    print(f"wrote {len(rows)} rows to {args.markdown} and {args.png}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--csv", type=Path, default=DOCS / "results.csv")
    commands = parser.add_subparsers(dest="what", required=True)
    one = commands.add_parser("add", help="evaluate a model and write its stage's row")
    one.add_argument("model", type=Path, help="SB3 .zip or weights-only .pt")
    one.add_argument("--algo", default="ddqn")
    one.add_argument("--env", default=None, help="default: the model's env id")
    one.add_argument("--episodes", type=int, default=20)
    one.add_argument("--run", type=Path, default=None, help="the rl-zoo run folder the model comes from")
    one.add_argument("--minutes", type=float, default=None, help="training minutes, without --run")
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--card", required=True)
    one.add_argument("--date", required=True, help="when it was trained")
    one.add_argument("--command", required=True, help="the command that trained it")
    out = commands.add_parser("render", help="write the table into docs/results.md and draw docs/results.png")
    out.add_argument("--markdown", type=Path, default=DOCS / "results.md")
    out.add_argument("--png", type=Path, default=DOCS / "results.png")
    args = parser.parse_args()
    add(args) if args.what == "add" else render(args)


if __name__ == "__main__":
    main()
