"""When training stops, and why: lower the learning rate on a plateau before stopping, and say the reason.

Stopping when the validation loss has set no record for a few epochs cuts a convex problem short: a
fixed step size keeps the weights jittering around the optimum, and an optimizer with momentum
overshoots, setting a record its steady descent then takes long to beat. :class:`Stopping` compares the
mean of each window of ``patience`` validations with the window before; when it has not improved by more
than ``rel_tol`` of its value, the learning rate is lowered (``lr_factor``, up to ``lr_reductions``
times), and training stops only when it still does not improve at the lowest rate. Gradient descent
given enough epochs then lands on the optimum of a convex problem.

Why a run stopped ends up in ``metrics.json`` (``stopped`` and ``stopped_reason``), the summary and
``report.md``: see :func:`why_stopped`.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl

from catbrain.errors import ConfigError

# The settings and their defaults, as Stopping takes them.
SETTINGS = {"mode": "min", "patience": 10, "rel_tol": 1e-6, "min_delta": 0.0, "lr_factor": 0.5, "lr_reductions": 6}


REASONS = {
    "converged": "converged",
    "no_improvement": "no improvement on validation",
    "max_epochs": "epochs used up",
    "max_steps": "steps used up",
    "max_time": "time limit reached",
    "solved": "solved exactly",
    "stopped": "stopped by a callback",
}


class Stopping(pl.Callback):
    """Lower the learning rate when ``monitor`` stops improving; stop when it still does not improve.

    The monitored values are taken in windows of ``patience`` validations. A window whose mean is not
    better than the previous window's by more than ``rel_tol * |previous| + min_delta`` is a plateau
    (windows, not the best single value: a noisy metric or an optimizer's overshoot sets records that its
    steady descent then takes long to beat). On a plateau the learning rate of every parameter group is
    multiplied by ``lr_factor``, unless it has been lowered ``lr_reductions`` times already (or a
    learning-rate scheduler owns it): then training stops, *converged* when the two windows are equal
    within the tolerance, with *no improvement on validation* when the last one is worse (noise, or a
    model starting to fit its training rows).
    """

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: str = SETTINGS["mode"],
        patience: int = SETTINGS["patience"],
        rel_tol: float = SETTINGS["rel_tol"],
        min_delta: float = SETTINGS["min_delta"],
        lr_factor: float = SETTINGS["lr_factor"],
        lr_reductions: int = SETTINGS["lr_reductions"],
    ) -> None:
        check_settings(mode, patience, rel_tol, min_delta, lr_factor, lr_reductions)
        self.monitor, self.mode, self.patience = monitor, mode, int(patience)
        self.rel_tol, self.min_delta = float(rel_tol), float(min_delta)
        self.lr_factor, self.lr_reductions = float(lr_factor), int(lr_reductions)
        self.previous: float | None = None  # the mean of the last full window
        self.window: list[float] = []  # the values of the window being filled
        self.reductions = 0
        self.best: float | None = None
        self.best_epoch = -1
        self.reason: str | None = None
        self.sentence = ""

    @classmethod
    def check_arguments(cls, path: str, **arguments: Any) -> None:
        """Refuse a bad setting before any work, naming ``path.<setting>``."""
        check_settings(**{key: arguments.get(key, default) for key, default in SETTINGS.items()}, prefix=f"{path}.")

    @property
    def state_key(self) -> str:
        from catbrain.compat.lightning import callback_state_key

        return callback_state_key(self, monitor=self.monitor, mode=self.mode)

    def _better(self, value: float, than: float, margin: float = 0.0) -> bool:
        return value < than - margin if self.mode == "min" else value > than + margin

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run or self.reason is not None:
            return
        found = trainer.callback_metrics.get(self.monitor)
        if found is None:
            logged = sorted(key for key in trainer.callback_metrics if key.startswith("val/"))
            raise ConfigError(
                f"callbacks.early_stopping.monitor={self.monitor!r} is not a validation metric of the run ({logged})"
            )
        value = float(found)
        if not math.isfinite(value):
            return  # the task's divergence check says what went wrong
        if self.best is None or self._better(value, self.best):
            self.best, self.best_epoch = value, trainer.current_epoch
        self.window.append(value)
        if len(self.window) < self.patience:
            return
        mean, previous = sum(self.window) / len(self.window), self.previous
        self.previous, self.window = mean, []
        if previous is None:
            return
        margin = self.rel_tol * abs(previous) + self.min_delta
        if self._better(mean, previous, margin):
            return
        if self.reductions < self.lr_reductions and not trainer.lr_scheduler_configs and _lower_rate(trainer, self):
            self.reductions += 1
            return
        trainer.should_stop = True
        lowered = f", the learning rate lowered {self.reductions} times" if self.reductions else ""
        windows = f"the mean of the last {self.patience} validations"
        if not self._better(previous, mean, margin):  # equal within the tolerance
            self.reason = "converged"
            self.sentence = f"{self.monitor}: {windows} changed by less than {self.rel_tol:g} of its value{lowered}"
        else:
            self.reason = "no_improvement"
            self.sentence = (
                f"{self.monitor}: {windows} is worse than of the {self.patience} before{lowered}; "
                f"best {self.best:.6g} at epoch {self.best_epoch}"
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "previous": self.previous,
            "window": list(self.window),
            "reductions": self.reductions,
            "best": self.best,
            "best_epoch": self.best_epoch,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """What a run of catbrain wrote: numbers, a window no longer than ``patience``; else the file is refused."""
        from catbrain.errors import CheckpointError

        try:
            previous, best = state_dict.get("previous"), state_dict.get("best")
            window = [float(v) for v in state_dict.get("window", [])]
            self.previous = None if previous is None else float(previous)
            self.best = None if best is None else float(best)
            self.best_epoch = int(state_dict.get("best_epoch", -1))
            self.reductions = int(state_dict.get("reductions", 0))
        except (TypeError, ValueError, AttributeError) as error:
            raise CheckpointError(f"its stopping state is not one catbrain writes ({error})") from None
        if len(window) >= self.patience or not 0 <= self.reductions <= self.lr_reductions:
            raise CheckpointError(
                f"its stopping state ({len(window)} values in a window of {self.patience}, "
                f"{self.reductions} of {self.lr_reductions} reductions) does not fit callbacks.early_stopping"
            )
        self.window = window


def check_settings(
    mode: str,
    patience: int,
    rel_tol: float,
    min_delta: float,
    lr_factor: float,
    lr_reductions: int,
    prefix: str = "callbacks.early_stopping.",
) -> None:
    """The stopping settings, each named with what it may be."""
    factor, reductions = lr_factor, lr_reductions
    if mode not in ("min", "max"):
        raise ConfigError(f"{prefix}mode={mode!r}: must be min or max")
    for name, value in (("patience", patience), ("lr_reductions", reductions)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "patience" else 0):
            at_least = 1 if name == "patience" else 0
            raise ConfigError(f"{prefix}{name}={value!r}: must be an integer >= {at_least}")
    for name, value in (("rel_tol", rel_tol), ("min_delta", min_delta)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
            raise ConfigError(f"{prefix}{name}={value!r}: must be a finite number >= 0")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1:
        raise ConfigError(f"{prefix}lr_factor={factor!r}: must be a number between 0 and 1 (exclusive)")


def _lower_rate(trainer: pl.Trainer, stopping: Stopping) -> bool:
    """Multiply every parameter group's learning rate by ``lr_factor``; False when no optimizer has one."""
    lowered = False
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            if isinstance(group.get("lr"), (int, float)) and group["lr"] > 0:
                group["lr"] *= stopping.lr_factor
                lowered = True
    return lowered


def why_stopped(trainer: pl.Trainer, task: Any) -> tuple[str, str]:
    """``(reason, sentence)``: why ``trainer.fit`` returned. The reason is a key of :data:`REASONS`."""
    from catbrain.tasks.closed_form import ClosedForm

    stoppers = [c for c in trainer.callbacks if isinstance(c, Stopping) and c.reason is not None]
    if stoppers:
        return stoppers[0].reason, stoppers[0].sentence
    if any(isinstance(optimizer, ClosedForm) for optimizer in trainer.optimizers):
        return "solved", "optimizer=closed_form: the least-squares weights, then one epoch to measure them"
    epochs, steps = trainer.current_epoch, trainer.global_step
    if trainer.max_epochs is not None and 0 <= trainer.max_epochs <= epochs:
        return "max_epochs", f"trainer.max_epochs={trainer.max_epochs} reached"
    if trainer.max_steps is not None and 0 <= trainer.max_steps <= steps:
        return "max_steps", f"trainer.max_steps={trainer.max_steps} reached"
    if _timed_out(trainer):
        return "max_time", "trainer.max_time reached"
    named = [type(c).__name__ for c in trainer.callbacks if getattr(c, "stopped_epoch", 0)]
    return "stopped", f"by {', '.join(named)}" if named else f"at epoch {epochs}"


def _timed_out(trainer: pl.Trainer) -> bool:
    from pytorch_lightning.callbacks import Timer

    return any(isinstance(c, Timer) and c.time_remaining() is not None and c.time_remaining() <= 0
               for c in trainer.callbacks)  # fmt: skip
