"""What a person reads of a run: the summary tables on the console, and ``report.md`` with its config,
metrics, weights (learned, closed form and teacher's) and pictures on one page."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from catbrain.compat.omegaconf import config_yaml
from catbrain.run.files import write_atomically

CAPTIONS = {
    "decision_plane": "Decision plane: the model's decision for every object, the teacher's boundaries (dashed) "
    "and a sample of test objects in the colour of their observed decision.",
    "predicted_vs_true": "Predicted against observed target on test rows; the black line is a perfect prediction.",
    "learning_curves": "Learning curves: loss per epoch on the training and validation data, and validation metrics.",
    "weight_paths": "The weights after each epoch (solid), the least-squares answer on the same training rows "
    "(dashed) and the teacher's (dotted): gradient descent lands on the closed form.",
}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    align = ["---"] + ["---:"] * (len(header) - 1)
    return "\n".join([line(header), "| " + " | ".join(align) + " |", *(line(row) for row in rows)])


def write_report(
    run_dir: Path,
    title: str,
    config: dict[str, Any],
    metrics: dict[str, float],
    feature_names: list[str],
    pictures: list[Path],
    overrides: list[str] | None = None,
) -> Path:
    """Write ``<run_dir>/report.md`` and return its path."""
    lines = [f"# {title}", ""]
    if overrides is not None:
        lines += [f"Command: `{shlex.join([title.split(':')[0], *overrides])}`", ""]
    if "fit_seconds" in metrics:
        lines += [
            f"Training: {metrics['epochs']:.0f} epochs, {metrics['steps']:.0f} optimizer steps; "
            f"fit {metrics['fit_seconds']:.2f} s, of which training steps {metrics['train_seconds']:.2f} s.",
            "",
            *([f"Stopped: {stopped_line(metrics)}.", ""] if "stopped" in metrics else []),
        ]
    for name, header, rows in summary_tables(metrics, feature_names):
        lines += [f"## {name}", "", markdown_table(header, rows), ""]
    if (run_dir / "explore.html").exists():
        lines += ["Explore the model: [explore.html](explore.html) (open it in a browser: sliders for the features, "
                  "its answer live).", ""]  # fmt: skip
    if pictures:
        lines += ["## Pictures", ""]
        for picture in pictures:
            relative = picture.relative_to(run_dir) if picture.is_relative_to(run_dir) else picture
            lines += [
                f"![{picture.stem.replace('_', ' ')}]({relative.as_posix()})",
                "",
                CAPTIONS.get(picture.stem, ""),
                "",
            ]
    lines += ["## Config", "", "```yaml", config_yaml(config).rstrip(), "```", ""]
    path = run_dir / "report.md"
    write_atomically(path, "\n".join(lines))
    return path


def summary_tables(metrics: dict[str, float], feature_names: list[str]) -> list[tuple[str, list[str], list[list[str]]]]:
    """The run's results as ``(title, header, rows)`` tables, for the console and for ``report.md``.

    Metrics beside the Bayes-optimal ones (and on the shifted test data, if any), the confusion matrix,
    learned weights beside the closed-form and teacher's, and the decision boundaries as lines.
    Columns with nothing to show (no Bayes-optimal score or teacher, as for your own data) are left out.
    """
    tables = []
    names = sorted(
        k.removeprefix("test/")
        for k in metrics
        if k.startswith("test/") and "/bayes_" not in k and "/confusion/" not in k
    )
    columns = [
        ("model", "test/"),
        ("Bayes-optimal", "test/bayes_"),
        ("shifted", "shift/"),
        ("shifted Bayes", "shift/bayes_"),
    ]
    columns = [(title, prefix) for title, prefix in columns if any(prefix + name in metrics for name in names)]
    rows = [[name, *(_number(metrics.get(prefix + name), ".4f") for _, prefix in columns)] for name in names]
    tables.append(("test metrics", ["metric", *(title for title, _ in columns)], rows))

    for split, title in [("test", "test"), ("shift", "shifted test")]:
        cells = [key.split("/")[2:] for key in metrics if key.startswith(f"{split}/confusion/")]
        if cells:
            classes = list(dict.fromkeys(truth for truth, _ in cells))
            rows = [[t, *(f"{metrics[f'{split}/confusion/{t}/{p}']:.0f}" for p in classes)] for t in classes]
            tables.append((f"{title} confusion matrix (rows: true, columns: predicted)", ["", *classes], rows))

    if any(key.startswith("weight/") for key in metrics):
        columns = [("learned", "weight/", "bias")]
        if "closed_form_bias" in metrics:
            columns.append(("closed form", "closed_form_weight/", "closed_form_bias"))
        if "teacher_bias" in metrics:
            columns.append(("teacher", "teacher_weight/", "teacher_bias"))
        rows = []
        for name in [*feature_names, *["bias"] * ("bias" in metrics)]:  # no bias: learned thresholds carry it
            keys = [bias if name == "bias" else prefix + name for _, prefix, bias in columns]
            rows.append([name, *(f"{metrics[key]:+.4f}" for key in keys)])
        heading = ("w, b: " if "bias" in metrics else "w: ") + ", ".join(title for title, _, _ in columns)
        tables.append((heading, ["", *(c[0] for c in columns)], rows))

    pairs = list(dict.fromkeys(key.split("/")[1] for key in metrics if key.startswith(("boundary/", "threshold/"))))
    if pairs:
        has_threshold = any(f"threshold/{pair}" in metrics for pair in pairs)
        header = ["between", "", *["threshold"] * has_threshold, "boundary line"]
        rows = []
        for pair in pairs:
            between = pair.replace("-", " | ", 1)
            for who, prefix in [("learned", "boundary"), ("teacher", "teacher_boundary")]:
                line = _line(metrics, f"{prefix}/{pair}", feature_names)
                threshold = _number(metrics.get(f"threshold/{pair}"), "+.4f") if who == "learned" else ""
                if line or (who == "learned" and has_threshold):
                    rows.append([between if who == "learned" else "", who, *[threshold] * has_threshold, line])
        tables.append(("decision boundaries", header, rows))
    return tables


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _line(metrics: dict[str, float], prefix: str, feature_names: list[str]) -> str:
    """``hardness + 1.012 sharpness = 0.752`` from the metrics of one boundary line."""
    if f"{prefix}/offset" not in metrics:
        return ""
    terms = [feature_names[0]]
    for name in feature_names[1:]:
        weight = metrics[f"{prefix}/{name}"]
        terms.append(f"{'-' if weight < 0 else '+'} {abs(weight):.3f} {name}")
    return f"{' '.join(terms)} = {metrics[f'{prefix}/offset']:.3f}"


def print_summary(title: str, metrics: dict[str, float], feature_names: list[str], run_dir: Path) -> None:
    """The summary tables on the console, then where the run's files are."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)  # a file or pipe: no wrapping at 80
    for number, (name, header, rows) in enumerate(summary_tables(metrics, feature_names)):
        table = Table(title=escape(f"{title}: {name}" if number == 0 else name))  # a CSV's names are text
        for position, column in enumerate(header):
            table.add_column(escape(column), justify="left" if position == 0 else "right")
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
    if "stopped" in metrics:
        console.print(f"stopped: {stopped_line(metrics)}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"run directory: {run_dir}", markup=False)


def stopped_line(metrics: dict[str, Any]) -> str:
    """``converged after 312 epochs (val/loss changed by ...)``: why training stopped, in words."""
    from catbrain.run.stopping import REASONS

    reason = REASONS.get(str(metrics["stopped"]), str(metrics["stopped"]))
    count = metrics.get("epochs")
    epochs = f" after {count:.0f} epoch{'' if count == 1 else 's'}" if count is not None else ""
    because = f" ({metrics['stopped_reason']})" if metrics.get("stopped_reason") else ""
    return f"{reason}{epochs}{because}"
