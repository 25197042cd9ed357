"""Export an rl-zoo run's checkpoints as weights-only files, packed for the trip back from the GPU machine.

    python scripts/export_checkpoints.py logs/ddqn/SuperMarioBros-1-1-v0_1 --algo ddqn --out $OUT --per-tar 2

Each ``rl_model_<steps>_steps.zip`` (and the final ``<env>.zip``, as ``rl_model_<num_timesteps>_steps``) not
exported yet becomes ``.pt`` + ``.json`` (:func:`sb3_mario.weights.export_weights`, mtime of the zip kept so
that ``scripts/learning_curve.py`` knows when it was saved), ``--per-tar`` of them to a tar in ``--out``
(``<algo>_<run folder>_<steps>.tar``), with the run's monitor files, config and arguments. With ``--final``, also
the run's own pick, ``best_model.zip`` (as ``best_model.pt`` + ``.json``), and its evaluation log
``evaluations.npz``. ``--max-files`` and ``--max-mib`` cap what ``--out`` holds (the files already there count):
the checkpoints that would not fit stay unexported, for the next call. A checkpoint whose weights are all float16
numbers (``DoubleDQN(float16_checkpoints=True)``, the package's config) is exported as float16: the same numbers in
half the bytes.
"""

import argparse
import os
import re
import tarfile
from pathlib import Path
from typing import Any

from sb3_mario.loading import load_model
from sb3_mario.weights import export_weights, holds_float16_numbers


def export(model: Any, pipeline: dict[str, Any], path: Path, stem: Path, env_id: str) -> tuple[Path, Path]:
    """
    :param model: the model loaded from ``path``
    :param pipeline: what :func:`~sb3_mario.loading.load_model` returned beside it
    :param path: the zip it came from (its mtime goes to the exported files)
    :param stem: where to write ``.pt`` + ``.json``
    :param env_id: the run's env id (``--env``)
    :return: the files written
    """
    pipeline = {key: value for key, value in pipeline.items() if key != "env_id"}  # env_id names it
    # weights that are float16 numbers (DoubleDQN(float16_checkpoints=True)) travel as float16: half the bytes
    files = export_weights(model, stem, env_id=env_id, half=holds_float16_numbers(model.policy), **pipeline)
    for file in files:
        os.utime(file, (path.stat().st_mtime, path.stat().st_mtime))
    return files


def tar_extras(run: Path) -> list[Path]:
    """:return: the files of ``run`` that go into every tar: monitor files, rl-zoo's config and arguments, npz logs"""
    return [
        *run.glob("*.monitor.csv"),
        *run.glob("*/config.yml"),
        *run.glob("*/args.yml"),
        *run.glob("*.npz"),
    ]


def room_in(out: Path, max_files: int | None, max_mib: float | None) -> tuple[float, float]:
    """
    :param out: the folder the tars go to
    :param max_files: the most files it may hold (``None``: no limit)
    :param max_mib: the most MiB it may hold (``None``: no limit)
    :return: how many more files and bytes it takes
    """
    held = [p for p in out.iterdir() if p.is_file()] if out.is_dir() else []
    files = float("inf") if max_files is None else max_files - len(held)
    size = float("inf") if max_mib is None else max_mib * 2**20 - sum(p.stat().st_size for p in held)
    return files, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--algo", default="ddqn")
    parser.add_argument("--env", default="SuperMarioBros-1-1-v0")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-tar", type=int, default=2)
    parser.add_argument("--final", action="store_true", help="also export the final model of an ended run")
    parser.add_argument("--max-files", type=int, default=None, help="at most this many files in --out")
    parser.add_argument("--max-mib", type=float, default=None, help="at most this many MiB in --out")
    args = parser.parse_args()
    exported = args.run / "exported"
    exported.mkdir(exist_ok=True)
    zips = sorted(args.run.glob("rl_model_*_steps.zip"), key=lambda p: int(re.findall(r"\d+", p.name)[0]))
    if args.final and (args.run / f"{args.env}.zip").exists():
        zips.append(args.run / f"{args.env}.zip")
    if args.final and (args.run / "best_model.zip").exists():
        zips.append(args.run / "best_model.zip")
    extras = tar_extras(args.run)
    # a tar's size: its members, a 512-byte header each, and the padding of each to 512 bytes
    extras_size = sum(p.stat().st_size + 1024 for p in extras)
    files_left, bytes_left = room_in(args.out, args.max_files, args.max_mib)
    new: list[tuple[Path, Path]] = []
    left: list[str] = []
    for path in zips:
        if left:
            left.append(path.name)
            continue
        if path.name.startswith("rl_model_"):
            stem = exported / path.stem
            if stem.with_suffix(".pt").exists():
                continue
            model = pipeline = None
        else:
            # the final model is named by its steps, found inside it (and skipped if a checkpoint has them)
            model, pipeline = load_model(path, algo=args.algo, device="cpu")
            best = path.name == "best_model.zip"
            stem = exported / ("best_model" if best else f"rl_model_{model.num_timesteps}_steps")
            if not best and stem.with_suffix(".pt").exists():
                continue
        opens_tar = len(new) % args.per_tar == 0
        if opens_tar and files_left < 1:
            left.append(path.name)
            continue
        if model is None:
            model, pipeline = load_model(path, algo=args.algo, device="cpu")
        files = export(model, pipeline, path, stem, args.env)
        size = sum(f.stat().st_size + 1024 for f in files) + (extras_size if opens_tar else 0)
        if size > bytes_left:
            for file in files:
                file.unlink()
            left.append(path.name)
            continue
        new.append(files)
        bytes_left -= size
        files_left -= 1 if opens_tar else 0
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(new), args.per_tar):
        steps = (re.findall(r"\d+", new[i][0].name) or ["best"])[0]
        # named by run folder too: the runs of one box export into one folder
        with tarfile.open(args.out / f"{args.algo}_{args.run.name}_{steps}.tar", "w") as tar:
            for files in new[i : i + args.per_tar]:
                for file in files:
                    tar.add(file, arcname=file.name)
            for extra in extras:
                tar.add(extra, arcname=str(extra.relative_to(args.run)))
    print(f"exported {[f[0].name for f in new]} to {args.out}")
    if left:
        print(f"left for the next export (--max-files, --max-mib): {left}")


if __name__ == "__main__":
    main()
