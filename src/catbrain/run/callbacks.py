"""Callbacks catbrain adds to Lightning's own."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

from catbrain.errors import ConfigError, SearchStopped


class LastCheckpoint(Checkpoint):
    """Keep ``<dirpath>/last.ckpt``: the latest state, to resume from.

    A :class:`~pytorch_lightning.callbacks.Checkpoint`, so Lightning calls it after the module's
    epoch-end hook, with the other checkpoint callbacks, and :func:`catbrain.run.trainer.make_trainer`
    puts it after them: what it saves holds the epoch's best-checkpoint tracking (ModelCheckpoint
    updates it at the end of the epoch too), so a resume tests the same best checkpoint as an
    uninterrupted run.

    Saved after every training epoch, or, with ``every_n_train_steps=N``, as soon as N optimizer
    steps have passed since the last save (so a killed run loses fewer than N steps, also when a
    task takes several steps per call), and always once more when training ends.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None) -> None:
        self.check_arguments("last_checkpoint", every_n_train_steps=every_n_train_steps)
        self.path = Path(dirpath) / "last.ckpt"
        self.every_n_train_steps = every_n_train_steps
        self.saved_at_step = 0

    @classmethod
    def check_arguments(cls, path: str, every_n_train_steps: Any = None, **_: Any) -> None:
        """Refused before any work: a step count that is not an integer >= 1 (or null, each epoch)."""
        n = every_n_train_steps
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise ConfigError(f"{path}.every_n_train_steps={n!r}: must be an integer >= 1, or null (each epoch)")

    @property
    def state_key(self) -> str:
        from catbrain.compat.lightning import callback_state_key

        return callback_state_key(self, dirpath=str(self.path.parent), every_n_train_steps=self.every_n_train_steps)

    def _save(self, trainer: pl.Trainer) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        self.saved_at_step = trainer.global_step
        trainer.save_checkpoint(self.path, weights_only=False)

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        n = self.every_n_train_steps
        if n is not None and trainer.global_step - self.saved_at_step >= n:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_train_steps is None:
            self._save(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def state_dict(self) -> dict[str, Any]:
        return {"saved_at_step": self.saved_at_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.saved_at_step = state_dict.get("saved_at_step", 0)


class TrainingClock(pl.Callback):
    """Seconds spent in training epochs, validation and checkpoint writing at epoch end left out."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started: float | None = None

    def _start(self) -> None:
        self._started = time.perf_counter()

    def _stop(self) -> None:
        if self._started is not None:
            self.seconds += time.perf_counter() - self._started
            self._started = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.training and not trainer.sanity_checking:
            self._start()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop()


class PruneTrial(pl.Callback):
    """Report ``monitor`` to an Optuna trial after each validation; stop the trial when the pruner says so.

    Our own rather than optuna-integration's: that one subclasses ``lightning.pytorch.Callback`` (the
    unified ``lightning`` package), which a ``pytorch_lightning.Trainer`` refuses, and it only warns when
    the metric is missing, which would let a misspelt monitor run every trial to its end unpruned.
    The step reported is the epoch, so that trials with different batch sizes meet at the same steps.
    """

    def __init__(self, trial: Any, monitor: str) -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import optuna

        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
            raise SearchStopped(f"search.monitor={self.monitor!r} is not a validation metric of the run ({logged})")
        epoch = trainer.current_epoch
        self.trial.report(float(value), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} ({self.monitor} = {float(value):.6g})")


class RunRecord(pl.Callback):
    """Write into every checkpoint how its run was made: the resolved config, the overrides and the model.

    The model is stored as its class and plain arguments, which ``catbrain.predictor.checkpoint`` reads back
    through an allow-list; the task adds what its predictor is (kind, head, columns, ranges).
    """

    FORMAT = 2

    def __init__(self, config: dict[str, Any], overrides: list[str]) -> None:
        self.config, self.overrides = config, list(overrides)

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        model = self.config.get("model") or {}
        checkpoint.setdefault("catbrain", {}).update(
            {
                "format": self.FORMAT,
                "config": self.config,
                "overrides": self.overrides,
                "model": {
                    "class": model.get("_target_"),
                    "arguments": {key: value for key, value in model.items() if not key.startswith("_")},
                },
            }
        )
