"""What a run leaves behind: trainer from config, metrics.json, resolved config, printed summary."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def quiet_lightning() -> None:
    """Drop advice that does not apply here: worker count for in-memory batches, log intervals, cloud-logger tips."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # catbrain logs the step loss by optimizer steps, whatever the number of calls an epoch.
    warnings.filterwarnings("ignore", message=".*is smaller than the logging interval.*")
    # The task's own transfer_batch_to_device only skips batches already on the device.
    warnings.filterwarnings("ignore", message=".*overridden `transfer_batch_to_device`.*")
    # Epoch metrics come from torchmetrics, which already syncs them across processes.
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting.*")
    # A resumed run continues in its own checkpoint directory on purpose.
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip")
    )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as file:
            file.write(text)
        usual_permissions(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def usual_permissions(path: str | Path) -> None:
    """Give a file from ``mkstemp`` (owner-only) the permissions a plain ``open`` would have given it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def save_config(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Save the resolved config as ``config.yaml`` in the run directory; return it as plain containers."""
    resolved = OmegaConf.to_container(cfg, resolve=True)
    write_atomically(run_dir / "config.yaml", OmegaConf.to_yaml(resolved))
    return resolved


def keep_earlier_csv_logs(run_dir: Path) -> None:
    """A run resumed in its own directory: move the CSV log aside, which Lightning's CSV logger would delete."""
    for metrics in run_dir.glob("*/metrics.csv"):
        number = 1
        while (kept := metrics.with_name(f"metrics.before_resume_{number}.csv")).exists():
            number += 1
        metrics.rename(kept)


def make_trainer(cfg: DictConfig, with_callbacks: bool = True) -> Any:
    from hydra.utils import instantiate

    configured = (cfg.get("callbacks") or {}).values() if with_callbacks else []
    callbacks = [instantiate(c) for c in configured if c is not None]
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    extra: dict[str, Any] = {}
    if not any("Checkpoint" in type(callback).__name__ for callback in callbacks):
        extra["enable_checkpointing"] = False  # no checkpoints asked for: none from Lightning's defaults either
    steps_per_call = cfg.get("task", {}).get("steps_per_call", 1)
    interval = cfg.trainer.get("val_check_interval")
    if steps_per_call > 1 and isinstance(interval, int):
        extra["val_check_interval"] = interval // steps_per_call  # Lightning counts calls, the config steps
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, **extra)


def collect_metrics(trainer: Any, task: Any, datamodule: Any, closed_form_too: bool = True) -> dict[str, float]:
    """Test metrics, Bayes-optimal references, and learned vs teacher weights, as one flat mapping.

    ``closed_form_too=False`` leaves out the least-squares answer: evaluation has no training rows of its own.
    """
    metrics = split_metrics(trainer, task, datamodule, "test")
    rule, teacher = task.linear_rule(), datamodule.teacher()
    names = datamodule.feature_names
    if rule is not None:
        metrics.update({f"weight/{name}": float(w) for name, w in zip(names, rule[0])})
        if not getattr(task.model, "learn_thresholds", False):  # learned thresholds carry the offset: no bias
            metrics["bias"] = rule[1]
        solved = closed_form(datamodule) if closed_form_too else None
        if solved is not None:
            metrics.update({f"closed_form_weight/{name}": float(w) for name, w in zip(names, solved[0])})
            metrics["closed_form_bias"] = solved[1]
        if teacher is not None:
            metrics.update({f"teacher_weight/{name}": float(w) for name, w in zip(names, teacher[0])})
            metrics["teacher_bias"] = float(teacher[1])
    thresholds = getattr(task.model, "thresholds", None)
    class_names = getattr(task, "class_names", None)
    if thresholds is not None:
        pairs = [f"{lower}-{upper}" for lower, upper in zip(class_names, class_names[1:])]
        metrics.update({f"threshold/{pair}": float(t) for pair, t in zip(pairs, thresholds.detach().cpu())})
    learned = boundary_lines(task)
    taught = datamodule.teacher_boundaries() if hasattr(datamodule, "teacher_boundaries") else None
    for prefix, lines in [("boundary", learned), ("teacher_boundary", taught)]:
        if lines and class_names and len(lines) == len(class_names) - 1:
            for lower, upper, (weights, offset) in zip(class_names, class_names[1:], lines):
                metrics.update(line_metrics(f"{prefix}/{lower}-{upper}", weights, offset, names))
    return metrics


def split_metrics(trainer: Any, task: Any, datamodule: Any, split: str) -> dict[str, float]:
    """The metrics of the last ``trainer.test`` on ``split``, its Bayes-optimal references, its confusion matrix."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(f"{split}/")}
    metrics.update(datamodule.reference_metrics(split, getattr(task.head, "levels", None)))
    confusion = getattr(task, "test_confusion_matrix", None)
    if confusion is not None:
        for i, truth in enumerate(task.class_names):
            for j, predicted in enumerate(task.class_names):
                metrics[f"{split}/confusion/{truth}/{predicted}"] = float(confusion[i, j])
    return metrics


def test_shifted(trainer: Any, task: Any, datamodule: Any) -> dict[str, float]:
    """Test on the data module's shifted split, if it has one: metrics named ``shift/...``."""
    if getattr(datamodule, "test_world", None) is None:
        return {}
    trainer.test(task, dataloaders=datamodule.split_dataloader("shift"), verbose=False)
    return split_metrics(trainer, task, datamodule, "shift")


def boundary_lines(task: Any) -> list[tuple[Any, float]] | None:
    """A linear classifier's boundary between each pair of neighbouring classes, as ``w . x = c`` in raw units.

    Thresholded scores: ``w . x + b = threshold_k``; softmax logits: where two neighbouring logits are equal.
    """
    from catbrain.models import Linear, ThresholdedLinear

    model, class_names = task.model, getattr(task, "class_names", None)
    if not class_names:
        return None
    if isinstance(model, ThresholdedLinear):
        weights, bias = task.linear_rule()
        return [(weights, float(t) - bias) for t in model.thresholds.detach().cpu().tolist()]
    if isinstance(model, Linear) and model.out_features == len(class_names) > 1:
        weight, bias = task.raw_linear()  # logits in raw units: W x + b
        differences = weight[1:] - weight[:-1]
        return [(w, float(c)) for w, c in zip(differences, bias[:-1] - bias[1:])]
    return None


def line_metrics(prefix: str, weights: Any, offset: float, names: list[str]) -> dict[str, float]:
    """The line ``w . x = c`` scaled so that its first feature's weight is 1: comparable whatever its scale."""
    first = float(weights[0])
    scale = first if abs(first) > 1e-12 else 1.0
    metrics = {f"{prefix}/{name}": float(w) / scale for name, w in zip(names, weights)}
    metrics[f"{prefix}/offset"] = offset / scale
    return metrics


def closed_form(datamodule: Any) -> tuple[Any, float] | None:
    """Least squares on the training split, ``argmin_w,b |X w + b - y|^2``: where gradient descent should land."""
    import torch

    arrays = datamodule.training_arrays() if hasattr(datamodule, "training_arrays") else None
    if arrays is None:
        return None
    features, target = (a.detach().double().cpu() for a in arrays)
    design = torch.cat([features, torch.ones(len(features), 1, dtype=torch.float64)], dim=1)
    # The normal equations in float64: the same digits on every run (a threaded QR solver is not).
    solution = torch.linalg.solve(design.T @ design, design.T @ target)
    return solution[:-1], float(solution[-1])


def write_metrics(run_dir: Path, metrics: dict[str, float]) -> Path:
    path = run_dir / "metrics.json"
    write_atomically(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
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
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 120)  # a file or pipe: no wrapping at 80
    for number, (name, header, rows) in enumerate(summary_tables(metrics, feature_names)):
        table = Table(title=f"{title}: {name}" if number == 0 else name)
        for position, column in enumerate(header):
            table.add_column(column, justify="left" if position == 0 else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    console.print(f"run directory: {run_dir}")
