"""Sweep summaries: one row per job (or search trial), the best run by a metric, as CSV, Markdown and a table.

``catbrain-train -m ...`` records each job's outcome in ``<job dir>/job.json`` (Hydra's ``on_job_end``,
which runs where the job runs, in another process too) and writes ``summary.csv`` and ``summary.md``
in the sweep directory when the sweep ends (``on_multirun_end``), from what the job directories hold:
a job that left no outcome (killed) is listed as failed, never left out. A sweep directory may hold the
job directories of earlier sweeps (``hydra.sweep.dir`` named again): the summary covers this sweep's jobs
only, known from the sweep's own overrides (:func:`sweep_jobs_of`), and says how many folders it left out.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from catbrain.commands import common
from catbrain.compat.hydra import job_error
from catbrain.errors import UsageError
from catbrain.run.files import write_atomically
from catbrain.run.summary import write_summary
from catbrain.run.sweep_folders import OUTCOME_FILE, rows_of_sweep

DIRECTIONS = ("min", "max")


def default_metric(cfg: DictConfig) -> tuple[str, str]:
    """What the checkpoint callback monitors (``val/loss``): runs are compared on validation data, not test data."""
    for callback in (cfg.get("callbacks") or {}).values():
        if callback is not None and "ModelCheckpoint" in str(callback.get("_target_", "")):
            monitor = callback.get("monitor")
            if monitor:
                return str(monitor), str(callback.get("mode", "min"))
    return "val/loss", "min"


def check_choice(metric: str | None, direction: str | None, prefix: str) -> None:
    """Refuse a direction other than min or max, and an empty metric name."""
    if direction is not None and direction not in DIRECTIONS:
        raise UsageError(f"{prefix}direction={direction!r}: must be one of {list(DIRECTIONS)}")
    if metric is not None and not str(metric).strip():
        raise UsageError(f"{prefix}metric={metric!r}: must name a metric of metrics.json, e.g. val/loss")


_launched: dict[str, list[list[str]]] = {}  # each sweep's jobs as its sweeper launched them, by sweep directory


def record_launched(sweep_dir: str, batch: Sequence[Sequence[str]] | None = None) -> None:
    """Keep the jobs the sweeper launches, in their numbering (a ``shuffle()`` sweep's order is drawn once, by the
    sweeper): ``batch=None`` starts a sweep, each batch adds its jobs."""
    if batch is None:
        _launched[str(sweep_dir)] = []
    else:
        _launched.setdefault(str(sweep_dir), []).extend([str(o) for o in job] for job in batch)


def sweep_jobs_of(config: DictConfig) -> list[list[str]] | None:
    """Each job's overrides, in Hydra's numbering, of the sweep ``config`` (the multirun config) describes, as the
    basic sweeper (or one built on it, as the vectorized launcher's) makes them from its ``params`` and the command
    line's overrides; ``None`` for another sweeper (its jobs are its own) or a sweep that cannot be split here."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from hydra.utils import get_class

    from catbrain.compat.hydra import basic_sweeper, sweep_jobs

    if _launched.get(str(config.hydra.sweep.dir)):  # as launched (catbrain's sweeper records them)
        return _launched[str(config.hydra.sweep.dir)]
    target = config.hydra.sweeper.get("_target_")
    try:
        if not target or not issubclass(get_class(str(target)), basic_sweeper()):
            return None
        params = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
        return sweep_jobs(OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task)))
    except (HydraException, ImportError, ValueError):  # a glob() sweep needs Hydra's config loader
        return None


def run_job(prog: str, job: Any) -> Any:
    """Run one job of a sweep: a failure is printed as one line and returned (``{"failed": reason}``),
    so that Hydra goes on with the other jobs and calls ``on_multirun_end``, which lists it as failed."""
    import os

    try:
        return job()
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        reason, bad_input = common.explain(error)
        from hydra.core.hydra_config import HydraConfig

        print(f"{prog}: error: job {HydraConfig.get().job.num}: {reason}", file=sys.stderr)
        return {"failed": reason, "bad_input": bad_input}


class SweepSummary(Callback):
    """Hydra callback: record each sweep job's outcome, and summarise the sweep when it ends.

    ``metric`` (default: the checkpoint callback's monitor, ``val/loss``: the test data stays out of the choice)
    and ``direction`` (``min`` or ``max``; default: the checkpoint callback's mode) choose the best run.
    The process exits non-zero after the summary when a job failed (2 when every failure was bad input).
    """

    def __init__(self, metric: str | None = None, direction: str | None = None, prog: str = "catbrain-train") -> None:
        self.prog = prog
        try:
            check_choice(metric, direction, "hydra.callbacks.summary.")
        except UsageError as error:
            common.fail(prog, str(error))  # Hydra would print a traceback for an exception raised here
        self.metric, self.direction = metric, direction
        self.started: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = time.time() - 1.0  # a file's time may lag the clock by a tick of the kernel's

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        outcome: dict[str, Any] = {"number": hydra_cfg.job.num, "status": "ok",
                                   "overrides": list(hydra_cfg.overrides.task)}  # fmt: skip
        if job_return.status == JobStatus.FAILED:
            reason, bad_input = common.explain(job_error(job_return))
            outcome.update(status="failed", error=reason, bad_input=bad_input)
        elif isinstance(job_return.return_value, dict) and "failed" in job_return.return_value:
            value = job_return.return_value
            outcome.update(status="failed", error=value["failed"], bad_input=value.get("bad_input", False))
        output_dir = Path(hydra_cfg.runtime.output_dir)
        write_atomically(output_dir / OUTCOME_FILE, json.dumps(outcome, indent=2) + "\n")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        metric, direction = default_metric(config)
        metric, direction = self.metric or metric, self.direction or direction
        rows, left_out = rows_of_sweep(sweep_dir, sweep_jobs_of(config), self.started)
        if not rows:
            return
        folders = f"{left_out} job folder{'s' * (left_out != 1)}"
        notes = [f"left out: {folders} of earlier sweeps in {sweep_dir}"] if left_out else []
        best = write_summary(sweep_dir, rows, metric, direction, f"{self.prog} sweep: {sweep_dir}", notes=notes)
        failed = [r for r in rows if r.status != "ok"]
        if failed:
            bad_input = all(r.bad_input for r in failed)
            numbers = ", ".join(str(r.number) for r in failed)
            message = f"{len(failed)} of {len(rows)} jobs failed (job {numbers})"
            common.fail(self.prog, message, code=2 if bad_input else 1)
        if best is None:  # a metric name can be any number of metrics.json (fit_seconds, weight/...): known only now
            from catbrain.commands.cli import did_you_mean

            names = sorted({k for r in rows for k in r.metrics})
            where = "is not a finite number in any job" if metric in names else "is in no job's metrics.json"
            common.fail(self.prog, f"hydra.callbacks.summary.metric={metric!r} {where}{did_you_mean(metric, names)}; "
                        f"the jobs' metrics: {', '.join(names)}")  # fmt: skip
