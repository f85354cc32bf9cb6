"""What a run writes, and how: every file replaced atomically, with the permissions a plain ``open`` gives."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from catbrain.compat.omegaconf import config_yaml


@contextmanager
def atomic_path(path: str | Path, fsync: bool = False) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; on success it replaces ``path`` in one rename.

    A reader (or a process restarted after a kill) sees the old complete file or the new one, never
    half of one; on failure the temporary file is removed and ``path`` is untouched. ``fsync`` flushes
    the file and its folder to disk first (checkpoints, which a crash must not lose).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        if fsync:
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
        usual_permissions(temporary)
        os.replace(temporary, target)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        if error.errno is not None and (error.filename is None or Path(str(error.filename)) == temporary):
            # The file meant, not its temporary stand-in: "No space left on device: '.../train.csv'".
            raise OSError(error.errno, error.strerror, str(target)) from None
        raise
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if fsync:
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path`."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def usual_permissions(path: str | Path) -> None:
    """Give a file from ``mkstemp`` (owner-only) the permissions a plain ``open`` would have given it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def point_latest(run_dir: Path) -> Path | None:
    """``outputs/train/latest``: a link to the newest run's folder beside it, replaced in one rename (a reader,
    or a run started at the same moment, sees the old link or the new one, never none). Only for the default
    run folders (``outputs/<command>/<time>``); nothing where links cannot be made."""
    run_dir = Path(run_dir).absolute()
    if run_dir.parent.parent.name != "outputs":
        return None
    link = run_dir.parent / "latest"
    temporary = run_dir.parent / f".latest.{os.getpid()}.tmp"
    try:
        temporary.unlink(missing_ok=True)
        os.symlink(run_dir.name, temporary, target_is_directory=True)
        os.replace(temporary, link)
    except OSError:
        temporary.unlink(missing_ok=True)
        return None
    return link


def save_config(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Save the resolved config as ``config.yaml`` in the run directory; return it as plain containers."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    write_atomically(run_dir / "config.yaml", config_yaml(resolved))
    return resolved


def keep_earlier_csv_logs(run_dir: Path) -> None:
    """A run resumed in its own directory: move the CSV log aside, which Lightning's CSV logger would delete."""
    for metrics in run_dir.glob("*/metrics.csv"):
        number = 1
        while (kept := metrics.with_name(f"metrics.before_resume_{number}.csv")).exists():
            number += 1
        metrics.rename(kept)


def write_metrics(run_dir: Path, metrics: dict[str, float]) -> Path:
    path = run_dir / "metrics.json"
    write_atomically(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path
