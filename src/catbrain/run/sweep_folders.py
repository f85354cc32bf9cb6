"""The job folders of a sweep directory: which of them are this sweep's jobs, and what each one left."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from catbrain.run.summary import Row

OUTCOME_FILE = "job.json"


def read_metrics(run_dir: Path) -> dict[str, float]:
    """A run's ``metrics.json``, or nothing when it has none (a failed or pruned run)."""
    try:
        found = json.loads((run_dir / "metrics.json").read_text()).items()
        return {k: float(v) for k, v in found if not isinstance(v, str)}  # why it stopped is words
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def outcome_of(job_dir: Path) -> dict:
    """A job folder's ``job.json``; a failed outcome when it has none (the job was interrupted)."""
    try:
        outcome = json.loads((job_dir / OUTCOME_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        outcome = None
    if not isinstance(outcome, dict):
        return {"status": "failed", "error": "no outcome recorded: the job was interrupted"}
    return outcome


def overrides_of(job_dir: Path, output_subdir: str | None = ".hydra") -> tuple[list[str], float] | None:
    """The overrides a job folder's job ran with, and when they were written: its ``<output_subdir>/overrides.yaml``,
    else (``hydra.output_subdir`` another or none) those its ``job.json`` records; ``None`` when neither says."""
    import yaml

    if output_subdir:
        path = job_dir / str(output_subdir) / "overrides.yaml"
        try:
            listed = yaml.safe_load(path.read_text(encoding="utf-8"))
            if isinstance(listed, list):
                return [str(o) for o in listed], path.stat().st_mtime
        except (OSError, ValueError, yaml.YAMLError):
            pass
    listed = outcome_of(job_dir).get("overrides")
    if isinstance(listed, list):
        return [str(o) for o in listed], (job_dir / OUTCOME_FILE).stat().st_mtime
    return None


def _job_folders(sweep_dir: Path) -> dict[Path, tuple[list[str], float]]:
    """Each job folder in ``sweep_dir`` (one with a ``job.json`` or a ``.hydra/overrides.yaml``): its overrides and
    when they were written."""
    folders = {p.parent for p in sweep_dir.glob(f"**/{OUTCOME_FILE}")}
    folders |= {p.parent.parent for p in sweep_dir.glob("**/.hydra/overrides.yaml")}
    return {folder: found for folder in folders if (found := overrides_of(folder)) is not None}


def rows_of_sweep(
    sweep_dir: Path, jobs: Sequence[Sequence[str]] | None = None, since: float | None = None
) -> tuple[list[Row], int]:
    """One row per job of this sweep, from its folder in ``sweep_dir``, and how many folders were left out.

    A sweep run again in a folder of earlier sweeps finds their jobs' folders there too: they are not this
    sweep's. ``jobs``: this sweep's job overrides in Hydra's numbering. A folder is job ``n``'s when its
    ``job.json`` says ``n`` (a job killed before it wrote one: when its folder's name does, or its overrides
    match) and its ``.hydra/overrides.yaml`` holds ``jobs[n]``, whichever run of the sweep trained it (a job kept
    from a killed run by the vectorized launcher is one); any other folder is left out, and a job that no folder
    holds is a failed row. Without ``jobs`` (a sweeper whose jobs are its own), the folders started at or after
    ``since`` (a time stamp; ``None``: every folder).
    """
    expected = None if jobs is None else [[str(o) for o in job] for job in jobs]
    rows: list[Row] = []
    taken: set[int] = set()
    stale: dict[int, Path] = {}  # a folder left out, by the number it claims
    left_out = 0
    for job_dir, (overrides, written) in sorted(_job_folders(sweep_dir).items()):
        outcome = outcome_of(job_dir)
        number = outcome.get("number", int(job_dir.name) if job_dir.name.isdigit() else None)
        if expected is not None and number is None:
            number = next((n for n, job in enumerate(expected) if job == overrides and n not in taken), None)
        if expected is not None:
            ours = number is not None and 0 <= number < len(expected) and expected[number] == overrides
        else:
            ours = since is None or written >= since
        if not ours or number in taken:
            left_out += 1
            stale.setdefault(number, job_dir)
            continue
        number = len(rows) if number is None else int(number)
        taken.add(number)
        rows.append(
            Row(
                number=number,
                overrides=overrides,
                status=outcome.get("status", "failed"),
                metrics=read_metrics(job_dir),
                run_dir=str(job_dir),
                error=outcome.get("error", ""),
                bad_input=bool(outcome.get("bad_input", False)),
            )
        )
    for number, job in enumerate(expected or []):
        if number not in taken:
            where = f"{stale[number]} holds another sweep's job" if number in stale else "no folder holds it"
            rows.append(Row(number, job, "failed", error=f"not run: {where}"))
    return sorted(rows, key=lambda r: r.number), left_out
