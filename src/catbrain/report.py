"""``report.md``: one page per run with its config, metrics, weights (learned, closed form, teacher) and pictures."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from catbrain.runs import summary_tables, write_atomically

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
        ]
    for name, header, rows in summary_tables(metrics, feature_names):
        lines += [f"## {name}", "", markdown_table(header, rows), ""]
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
    lines += ["## Config", "", "```yaml", OmegaConf.to_yaml(config).rstrip(), "```", ""]
    path = run_dir / "report.md"
    write_atomically(path, "\n".join(lines))
    return path
