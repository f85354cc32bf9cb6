"""Sweep summaries: one row per job (or search trial), the best run by a metric, as CSV, Markdown and a table.

``catbrain-train -m ...`` records each job's outcome in ``<job dir>/job.json`` (Hydra's ``on_job_end``,
which runs where the job runs, in another process too) and writes ``summary.csv`` and ``summary.md``
in the sweep directory when the sweep ends (``on_multirun_end``), from what the job directories hold:
a job that left no outcome (killed) is listed as failed, never left out.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from catbrain import _cli
from catbrain.compat.hydra import job_error
from catbrain.runs import write_atomically

DIRECTIONS = ("min", "max")
OUTCOME_FILE = "job.json"


@dataclass
class Row:
    """One job or trial of a sweep: what it was given, how it ended, what it measured, where it lies."""

    number: int
    overrides: list[str]
    status: str  # ok, failed, pruned
    metrics: dict[str, float] = field(default_factory=dict)
    run_dir: str = ""
    error: str = ""
    bad_input: bool = False


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
        raise _cli.UsageError(f"{prefix}direction={direction!r}: must be one of {list(DIRECTIONS)}")
    if metric is not None and not str(metric).strip():
        raise _cli.UsageError(f"{prefix}metric={metric!r}: must name a metric of metrics.json, e.g. val/loss")


def best_row(rows: Sequence[Row], metric: str, direction: str) -> Row | None:
    """The ok row with the lowest (``min``) or highest (``max``) finite ``metric``; ``None`` when there is none."""
    scored = [r for r in rows if r.status == "ok" and math.isfinite(r.metrics.get(metric, math.nan))]
    if not scored:
        return None
    sign = 1.0 if direction == "min" else -1.0
    return min(scored, key=lambda r: (sign * r.metrics[metric], r.number))


def key_metrics(rows: Sequence[Row], metric: str) -> list[str]:
    """The chosen metric first, then each test metric (Bayes-optimal references and confusion cells left out)."""
    found = {k for r in rows for k in r.metrics}
    names = sorted(k for k in found if k.startswith("test/") and "/bayes_" not in k and "/confusion/" not in k)
    first = [metric] if metric in found else []
    return first + [n for n in names if n != metric] + (["epochs"] if "epochs" in found else [])


def varying_overrides(rows: Sequence[Row]) -> tuple[list[list[str]], list[str]]:
    """Each row's overrides that are not shared by all rows, and the shared ones (all of them for a single row)."""
    if len(rows) < 2:
        return [list(r.overrides) for r in rows], []
    common = set(rows[0].overrides).intersection(*(r.overrides for r in rows[1:]))
    shared = [o for o in rows[0].overrides if o in common]
    return [[o for o in r.overrides if o not in common] for r in rows], shared


def short(override: str) -> str:
    """``key=value`` with a float value cut to 4 significant digits, for reading (the CSV keeps every digit)."""
    key, _, value = override.partition("=")
    try:
        number = float(value)
    except ValueError:
        return override
    return f"{key}={number:.4g}" if "." in value or "e" in value.lower() else override


def _number(value: float | None) -> str:
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def write_summary(
    directory: Path, rows: Sequence[Row], metric: str, direction: str, title: str, label: str = "job"
) -> Row | None:
    """Write ``summary.csv`` and ``summary.md`` into ``directory``, print the table, and return the best row.

    The CSV holds each row's full overrides; the Markdown and the printed table show the overrides that
    differ between rows (the shared ones once, above the table). Files are replaced atomically.
    """
    from rich.console import Console
    from rich.table import Table

    rows = sorted(rows, key=lambda r: r.number)
    names = key_metrics(rows, metric)
    best = best_row(rows, metric, direction)
    varying, shared = varying_overrides(rows)

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([label, "status", "overrides", *names, "best", "run_dir", "reason"])
    for row in rows:
        values = [_number(row.metrics.get(name)) for name in names]
        mark = "yes" if row is best else ""
        writer.writerow([row.number, row.status, " ".join(row.overrides), *values, mark, row.run_dir, row.error])
    write_atomically(directory / "summary.csv", text.getvalue())

    best_line = (
        f"best {label}: {best.number} ({metric} = {_number(best.metrics[metric])}, {direction}); "
        f"overrides: {' '.join(best.overrides) or '(none)'}; run dir: {best.run_dir}"
        if best is not None
        else f"best {label}: none ({metric} is in no {label} that ended ok)"
    )
    counts = {status: sum(r.status == status for r in rows) for status in dict.fromkeys(r.status for r in rows)}
    lines = [f"# {title}", "", f"{len(rows)} {label}s: " + ", ".join(f"{n} {s}" for s, n in counts.items()), ""]
    if shared:
        lines += ["shared overrides: `" + " ".join(shared) + "`", ""]
    lines += [best_line.replace("best", "**best", 1).replace(":", ":**", 1), ""]
    header = [label, "status", "overrides", *names, "run dir", "reason"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, own in zip(rows, varying):
        cells = [
            f"**{row.number}**" if row is best else str(row.number),
            row.status,
            " ".join(f"`{short(o)}`" for o in own),
            *(_number(row.metrics.get(name)) for name in names),
            row.run_dir,
            row.error.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    write_atomically(directory / "summary.md", "\n".join(lines) + "\n")

    # The printed table keeps to what fits a terminal: the chosen metric; the files hold every metric.
    table = Table(title=title)
    table.add_column(label, justify="right")
    table.add_column("status")
    table.add_column("overrides", overflow="fold", min_width=24)
    table.add_column(metric, justify="right")
    table.add_column("epochs", justify="right")
    table.add_column("reason", overflow="fold")
    for row, own in zip(rows, varying):
        style = "bold green" if row is best else ("red" if row.status == "failed" else None)
        value = f"{row.metrics[metric]:.4g}" if metric in row.metrics else ""
        epochs = _number(row.metrics.get("epochs"))
        table.add_row(str(row.number), row.status, " ".join(map(short, own)), value, epochs, row.error, style=style)
    console = Console(width=None if sys.stdout.isatty() else 120)  # a file or pipe: no wrapping at 80
    console.print(table)
    console.print(best_line, highlight=False, soft_wrap=True)
    console.print(f"summary: {directory / 'summary.md'}", highlight=False, soft_wrap=True)
    return best


def read_metrics(run_dir: Path) -> dict[str, float]:
    """A run's ``metrics.json``, or nothing when it has none (a failed or pruned run)."""
    try:
        return {k: float(v) for k, v in json.loads((run_dir / "metrics.json").read_text()).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def rows_of_sweep(sweep_dir: Path) -> list[Row]:
    """One row per job directory of a sweep (each holds Hydra's ``.hydra/overrides.yaml`` from its start)."""
    rows = []
    for overrides_file in sweep_dir.glob("**/.hydra/overrides.yaml"):
        job_dir = overrides_file.parent.parent
        overrides = [str(o) for o in OmegaConf.load(overrides_file)]
        try:
            outcome = json.loads((job_dir / OUTCOME_FILE).read_text())
        except (OSError, ValueError):
            outcome = {"status": "failed", "error": "no outcome recorded: the job was interrupted"}
        number = outcome.get("number")
        if number is None:
            number = int(job_dir.name) if job_dir.name.isdigit() else len(rows)
        rows.append(
            Row(
                number=int(number),
                overrides=overrides,
                status=outcome.get("status", "failed"),
                metrics=read_metrics(job_dir),
                run_dir=str(job_dir),
                error=outcome.get("error", ""),
                bad_input=bool(outcome.get("bad_input", False)),
            )
        )
    return rows


def run_job(prog: str, job: Any) -> Any:
    """Run one job of a sweep: a failure is printed as one line and returned (``{"failed": reason}``),
    so that Hydra goes on with the other jobs and calls ``on_multirun_end``, which lists it as failed."""
    import os

    try:
        return job()
    except Exception as error:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        reason, bad_input = _cli.explain(error)
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
        except _cli.UsageError as error:
            _cli.fail(prog, str(error))  # Hydra would print a traceback for an exception raised here
        self.metric, self.direction = metric, direction

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobStatus
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return
        outcome: dict[str, Any] = {"number": hydra_cfg.job.num, "status": "ok"}
        if job_return.status == JobStatus.FAILED:
            reason, bad_input = _cli.explain(job_error(job_return))
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
        rows = rows_of_sweep(sweep_dir)
        if not rows:
            return
        best = write_summary(sweep_dir, rows, metric, direction, f"{self.prog} sweep: {sweep_dir}")
        failed = [r for r in rows if r.status != "ok"]
        if failed:
            bad_input = all(r.bad_input for r in failed)
            numbers = ", ".join(str(r.number) for r in failed)
            message = f"{len(failed)} of {len(rows)} jobs failed (job {numbers})"
            _cli.fail(self.prog, message, code=2 if bad_input else 1)
        if best is None:
            names = sorted({k for r in rows for k in r.metrics if k.startswith("test/")})
            _cli.fail(self.prog, f"hydra.callbacks.summary.metric={metric!r} is in no job's metrics.json ({names})")
