"""What a sweep's runs add up to: one row per job, the best by a validation metric, summary.csv and summary.md."""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from catbrain.run.files import write_atomically
from catbrain.run.seeds import best_group, seed_groups, seeds_csv, seeds_markdown, setting_label, shown


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
    directory: Path,
    rows: Sequence[Row],
    metric: str,
    direction: str,
    title: str,
    label: str = "job",
    notes: Sequence[str] = (),
) -> Row | None:
    """Write ``summary.csv`` and ``summary.md`` into ``directory``, print the table, and return the best row.

    The CSV holds each row's full overrides; the Markdown and the printed table show the overrides that
    differ between rows (the shared ones once, above the table). ``notes``: lines said under the count of
    rows, in the Markdown and on the console. Files are replaced atomically.
    """
    from rich.console import Console
    from rich.markup import escape
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
    lines += [line for note in notes for line in (note, "")]
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
    groups, varied = seed_groups(rows, names), {o for own in varying for o in own}
    lines += ["", *seeds_markdown(groups, varied, metric, direction)]
    write_atomically(directory / "summary.md", "\n".join(lines).rstrip("\n") + "\n")
    if groups:
        write_atomically(directory / "seeds.csv", seeds_csv(groups, varied))

    # The printed table keeps to what fits a terminal: the chosen metric; the files hold every metric.
    table = Table(title=escape(title))  # names and overrides are text: "callbacks=[a,b]" is no markup
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
        cells = [str(row.number), row.status, " ".join(map(short, own)), value, epochs, row.error]
        table.add_row(*map(escape, cells), style=style)
    console = Console(width=None if sys.stdout.isatty() else 120)  # a file or pipe: no wrapping at 80
    console.print(table)
    if groups:
        by_seed = Table(title=escape(f"{metric} over seeds: mean ± std [min, max]"))
        by_seed.add_column("setting", overflow="fold", min_width=24)
        by_seed.add_column("seeds", justify="right")
        by_seed.add_column(metric, justify="right")
        best_setting = best_group(groups, metric, direction)
        for group in groups:
            value = shown(group.stats[metric]) if metric in group.stats else ""
            cells = [setting_label(group, varied, short), str(len(group.numbers)), value]
            by_seed.add_row(*map(escape, cells), style="bold green" if group is best_setting else None)
        console.print(by_seed)
    for note in notes:
        console.print(note, highlight=False, soft_wrap=True, markup=False)
    console.print(best_line, highlight=False, soft_wrap=True, markup=False)
    console.print(f"summary: {directory / 'summary.md'}", highlight=False, soft_wrap=True, markup=False)
    return best
