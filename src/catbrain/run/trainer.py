"""The Lightning Trainer a run's config asks for, and Lightning's advice that does not apply here kept quiet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from omegaconf import DictConfig


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


def make_trainer(cfg: DictConfig, with_callbacks: bool = True) -> Any:
    from hydra.utils import instantiate

    configured = (cfg.get("callbacks") or {}).values() if with_callbacks else []
    callbacks = [instantiate(c) for c in configured if c is not None]
    # last.ckpt after the other checkpoint callbacks have updated their state for the epoch
    callbacks.sort(key=lambda callback: type(callback).__name__ == "LastCheckpoint")
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    extra: dict[str, Any] = {}
    if not any("Checkpoint" in type(callback).__name__ for callback in callbacks):
        extra["enable_checkpointing"] = False  # no checkpoints asked for: none from Lightning's defaults either
    steps_per_call = cfg.get("task", {}).get("steps_per_call", 1)
    interval = cfg.trainer.get("val_check_interval")
    if steps_per_call > 1 and isinstance(interval, int):
        extra["val_check_interval"] = interval // steps_per_call  # Lightning counts calls, the config steps
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, **extra)


SMALL_MODEL = 100_000  # parameters: below this, more threads only fight other busy processes for the cores


def thread_count(setting: int | str, model: Any) -> int:
    """``threads=auto``: one thread for a small model, torch's default (one per core) for a larger one."""
    import torch

    if setting != "auto":
        return int(setting)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    return 1 if parameters < SMALL_MODEL else torch.get_num_threads()


@contextmanager
def threads(setting: int | str, model: Any) -> Iterator[int]:
    """Run the body with :func:`thread_count` intra-op threads, and give the process its own number back after.

    Tiny tensors gain nothing from a second thread on an idle machine, and a busy machine's other
    processes make torch's threads wait on each other: the same fit took 20x its idle time beside
    two busy processes with one thread per core, about its idle time with one thread.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(thread_count(setting, model))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def build_run(cfg: DictConfig) -> tuple[Any, Any]:
    """The run's data module and task, built from ``cfg`` in the order that fixes its random draws (the seed, the
    data, the model's initial weights): a run alone and a job of a stacked sweep draw the same numbers."""
    from pathlib import Path

    import pytorch_lightning as pl
    from hydra.utils import instantiate

    for key in ("path", "train_path", "test_path"):  # so the run's config works from any directory
        if cfg.data.get(key):
            cfg.data[key] = str(Path(cfg.data[key]).resolve())
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    datamodule = instantiate(cfg.data)
    if cfg.data.get("class_names", None) is None and getattr(datamodule, "class_names", None):
        # Found in the data (a CSV's labels): the model's and task's configs interpolate them.
        cfg.data.class_names = list(datamodule.class_names)
    return datamodule, instantiate(cfg.task)
