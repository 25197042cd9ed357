"""Export an rl-zoo run's checkpoints as weights-only files, packed for the trip back from the GPU machine.

    python scripts/export_checkpoints.py logs/ddqn/SuperMarioBros-1-1-v0_1 --algo ddqn --out $OUT --per-tar 2

Each ``rl_model_<steps>_steps.zip`` (and the final ``<env>.zip``, as ``rl_model_<num_timesteps>_steps``) not
exported yet becomes ``.pt`` + ``.json`` (:func:`sb3_mario.weights.export_weights`, mtime of the zip kept so
that ``scripts/learning_curve.py`` knows when it was saved), ``--per-tar`` of them to a tar in ``--out``
(``<algo>_<run folder>_<steps>.tar``), with the run's monitor files, config and arguments. With ``--final``, also
the run's own pick, ``best_model.zip`` (as ``best_model.pt`` + ``.json``), and its evaluation log
``evaluations.npz``.
"""

import argparse
import os
import re
import tarfile
from pathlib import Path
from typing import Any

from sb3_mario.loading import load_model
from sb3_mario.weights import export_weights


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
    files = export_weights(model, stem, env_id=env_id, **pipeline)
    for file in files:
        os.utime(file, (path.stat().st_mtime, path.stat().st_mtime))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--algo", default="ddqn")
    parser.add_argument("--env", default="SuperMarioBros-1-1-v0")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-tar", type=int, default=2)
    parser.add_argument("--final", action="store_true", help="also export the final model of an ended run")
    args = parser.parse_args()
    exported = args.run / "exported"
    exported.mkdir(exist_ok=True)
    zips = sorted(args.run.glob("rl_model_*_steps.zip"), key=lambda p: int(re.findall(r"\d+", p.name)[0]))
    if args.final and (args.run / f"{args.env}.zip").exists():
        zips.append(args.run / f"{args.env}.zip")
    new = []
    for path in zips:
        if path.name.startswith("rl_model_") and (exported / path.name).with_suffix(".pt").exists():
            continue
        model, pipeline = load_model(path, algo=args.algo, device="cpu")
        stem = exported / f"rl_model_{model.num_timesteps}_steps"
        if not stem.with_suffix(".pt").exists():
            new.append(export(model, pipeline, path, stem, args.env))
    best = args.run / "best_model.zip"
    if args.final and best.exists():
        model, pipeline = load_model(best, algo=args.algo, device="cpu")
        new.append(export(model, pipeline, best, exported / "best_model", args.env))
    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(new), args.per_tar):
        steps = (re.findall(r"\d+", new[i][0].name) or ["best"])[0]
        # named by run folder too: the runs of one box export into one folder
        with tarfile.open(args.out / f"{args.algo}_{args.run.name}_{steps}.tar", "w") as tar:
            for files in new[i : i + args.per_tar]:
                for file in files:
                    tar.add(file, arcname=file.name)
            for extra in [
                *args.run.glob("*.monitor.csv"),
                *args.run.glob("*/config.yml"),
                *args.run.glob("*/args.yml"),
                *args.run.glob("*.npz"),
            ]:
                tar.add(extra, arcname=str(extra.relative_to(args.run)))
    print(f"exported {[f[0].name for f in new]} to {args.out}")


if __name__ == "__main__":
    main()
