"""Model and buffer files: atomic writes, SB3's file names, and checks of a model zip that name the problem."""

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: modules the saved ``policy_class`` of each algorithm comes from
POLICY_MODULES = {
    "ddqn": "stable_baselines3.dqn.policies",
    "dqn": "stable_baselines3.dqn.policies",
    "qrdqn": "sb3_contrib.qrdqn.policies",
}


def check_model_zip(path: str | Path, algo: str) -> None:
    """
    Raise a ``ValueError`` that names the problem when ``path`` is not a model zip that ``algo`` can load:
    missing file, corrupt or truncated zip, or a zip saved by another algorithm.

    :param path: the ``.zip`` file (SB3 adds the suffix when it is missing)
    :param algo: ``"ddqn"``, ``"dqn"`` or ``"qrdqn"``
    """
    path = Path(path)
    if not path.exists() and path.with_suffix(".zip").exists():
        path = path.with_suffix(".zip")
    if not path.is_file():
        raise FileNotFoundError(f"No model file at {path}. Check the path (rl-zoo saves to logs/<algo>/<env>_<run>/).")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"member {bad!r} fails its CRC check")
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError, OSError) as exc:
        raise ValueError(
            f"{path} is not a readable Stable-Baselines3 model zip ({exc}). It may have been cut short by an "
            "interrupted save or copy: load the previous checkpoint (rl-zoo: rl_model_<steps>_steps.zip) instead."
        ) from exc
    saved_module = data.get("policy_class", {}).get("__module__", "unknown")
    if algo in POLICY_MODULES and saved_module != POLICY_MODULES[algo]:
        raise ValueError(
            f"{path} was saved by another algorithm (its policy comes from {saved_module}), not by {algo}. "
            "Load it with the class that saved it (rl-zoo: pass the matching --algo)."
        )


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[BinaryIO]:
    """
    Write a file so that ``path`` is either its old content or the complete new one, never a partial file:
    write to a temporary file in the same folder, flush it to disk, then rename it over ``path``.

    :param path: the final file
    :return: a context manager giving the binary file handle to write to
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600: give the file the permissions a plain open() would (or the old file's)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def with_suffix(path: str | Path, suffix: str) -> Path:
    """
    :param path: a file path, with or without ``suffix``
    :param suffix: e.g. ``".zip"``
    :return: the path ending in ``suffix``, as SB3 names its files
    """
    path = Path(path)
    return path if path.suffix == suffix else path.with_name(path.name + suffix)
