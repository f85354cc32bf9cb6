"""The Lightning Trainer a run's config asks for, and Lightning's advice that does not apply here kept quiet."""

from __future__ import annotations

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
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    extra: dict[str, Any] = {}
    if not any("Checkpoint" in type(callback).__name__ for callback in callbacks):
        extra["enable_checkpointing"] = False  # no checkpoints asked for: none from Lightning's defaults either
    steps_per_call = cfg.get("task", {}).get("steps_per_call", 1)
    interval = cfg.trainer.get("val_check_interval")
    if steps_per_call > 1 and isinstance(interval, int):
        extra["val_check_interval"] = interval // steps_per_call  # Lightning counts calls, the config steps
    return instantiate(cfg.trainer, callbacks=callbacks, logger=logger, **extra)
