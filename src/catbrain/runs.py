"""What a run leaves behind: trainer from config, metrics.json, resolved config, printed summary."""

from __future__ import annotations

import json
import os
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
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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


def collect_metrics(trainer: Any, task: Any, datamodule: Any) -> dict[str, float]:
    """Test metrics, Bayes-optimal references, and learned vs teacher weights, as one flat mapping."""
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}
    metrics.update(datamodule.reference_metrics("test"))
    confusion = getattr(task, "test_confusion_matrix", None)
    if confusion is not None:
        for i, truth in enumerate(task.class_names):
            for j, predicted in enumerate(task.class_names):
                metrics[f"test/confusion/{truth}/{predicted}"] = float(confusion[i, j])
    rule, teacher = task.linear_rule(), datamodule.teacher()
    names = datamodule.feature_names
    if rule is not None:
        metrics.update({f"weight/{name}": float(w) for name, w in zip(names, rule[0])})
        metrics["bias"] = rule[1]
        solved = closed_form(datamodule)
        if solved is not None:
            metrics.update({f"closed_form_weight/{name}": float(w) for name, w in zip(names, solved[0])})
            metrics["closed_form_bias"] = solved[1]
        if teacher is not None:
            metrics.update({f"teacher_weight/{name}": float(w) for name, w in zip(names, teacher[0])})
            metrics["teacher_bias"] = float(teacher[1])
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


def print_summary(title: str, metrics: dict[str, float], feature_names: list[str], run_dir: Path) -> None:
    """Model metrics beside the Bayes-optimal ones, the confusion matrix, learned weights beside the teacher's.

    Columns with nothing to show (no known Bayes-optimal score or teacher, as for your own data) are left out.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console()
    names = sorted(k for k in metrics if k.startswith("test/") and "/bayes_" not in k and "/confusion/" not in k)
    references = {name: metrics.get(name.replace("test/", "test/bayes_", 1)) for name in names}
    table = Table(title=title)
    table.add_column("test metric")
    table.add_column("model", justify="right")
    if any(value is not None for value in references.values()):
        table.add_column("Bayes-optimal", justify="right")
    for name in names:
        reference = references[name]
        row = [name.removeprefix("test/"), f"{metrics[name]:.4f}"]
        if len(table.columns) == 3:
            row.append("" if reference is None else f"{reference:.4f}")
        table.add_row(*row)
    console.print(table)

    cells = [key.split("/")[2:] for key in metrics if key.startswith("test/confusion/")]
    if cells:
        classes = list(dict.fromkeys(truth for truth, _ in cells))
        confusion = Table(title="test confusion matrix (rows: true, columns: predicted)")
        confusion.add_column("")
        for name in classes:
            confusion.add_column(name, justify="right")
        for truth in classes:
            confusion.add_row(truth, *(f"{metrics[f'test/confusion/{truth}/{p}']:.0f}" for p in classes))
        console.print(confusion)

    if "bias" in metrics:
        columns = [("learned", "weight/", "bias")]
        if "closed_form_bias" in metrics:
            columns.append(("closed form", "closed_form_weight/", "closed_form_bias"))
        if "teacher_bias" in metrics:
            columns.append(("teacher", "teacher_weight/", "teacher_bias"))
        weights = Table(title="w, b: " + ", ".join(title for title, _, _ in columns))
        weights.add_column("")
        for title, _, _ in columns:
            weights.add_column(title, justify="right")
        for name in [*feature_names, "bias"]:
            keys = [bias if name == "bias" else prefix + name for _, prefix, bias in columns]
            weights.add_row(name, *(f"{metrics[key]:+.4f}" for key in keys))
        console.print(weights)
    console.print(f"run directory: {run_dir}")
