"""What a job trained in a stacked group leaves, as a run of it alone would: its checkpoints, and its metrics measured
with its best weights by the task's own metrics (:mod:`catbrain.run.vectorized` trains the group)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any


def write_checkpoint(path: Path, job: Any, state: dict, epoch: int, step: int, resolved: dict, stored: list[str]
                     ) -> None:  # fmt: skip
    """A checkpoint as a run of the job alone writes it, as far as predict, eval and export read one."""
    import pytorch_lightning as pl
    import torch

    from catbrain.run.callbacks import RunRecord
    from catbrain.run.files import atomic_path

    checkpoint: dict[str, Any] = {"epoch": epoch, "global_step": step, "pytorch-lightning_version": pl.__version__,
                                  "state_dict": state}  # fmt: skip
    job.task.on_save_checkpoint(checkpoint)
    RunRecord(resolved, stored).on_save_checkpoint(None, job.task, checkpoint)  # type: ignore[arg-type]
    checkpoint["catbrain_history"] = [entry for entry in job.history if entry["epoch"] <= epoch]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, fsync=True) as temporary:
        torch.save(checkpoint, temporary)


def test_job(job: Any, state: dict) -> dict[str, float]:
    """The job's test metrics with the weights ``state`` (its best, or with no best kept its last), as
    ``trainer.test`` measures them, and the rest of ``metrics.json`` (references, weights, boundaries, the validation
    metrics of the tested weights)."""
    import torch

    from catbrain.run import results

    task, datamodule = job.task, job.datamodule
    task.load_state_dict(state)
    task.eval()
    measured: dict[str, float] = {}
    splits = ["val", "test"] + (["shift"] if getattr(datamodule, "test_world", None) is not None else [])
    with torch.no_grad():
        for split in splits:
            stage = "val" if split == "val" else "test"
            loader = datamodule.split_dataloader(split)
            loader.sampler.batch_size *= int(getattr(task, "steps_per_call", 1))  # as a fit's evaluation batches
            for batch in loader:
                task._step(stage, batch)
            values = {key: float(value) for key, value in task.measured(stage, split).items()}
            if split == "val":
                measured.update(values)
                continue
            found = results.split_metrics(SimpleNamespace(callback_metrics=values), task, datamodule, split)
            if split == "test":
                found = results.collect_metrics(SimpleNamespace(callback_metrics=values), task, datamodule)
            measured.update(found)
    return measured
