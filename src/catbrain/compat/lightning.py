"""Lightning's private members that the K-steps-per-call loop and the resumable loader need.

- ``LightningOptimizer._on_before_step`` / ``_on_after_step``: what Lightning does around an
  optimizer step (its step counter and profiler), called when the loop steps the optimizer itself.
- ``_TrainingEpochLoop._batches_that_stepped``: the step the loggers see; Lightning counts one per
  call, the loop takes several optimizer steps per call.
- ``_TrainingEpochLoop.batch_progress.current.processed``: how many calls of an epoch are done,
  for a loader that resumes mid-epoch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def step_optimizer_directly(optimizer: Any, closure: Callable[[], Any]) -> None:
    """Step the wrapped optimizer with Lightning's bookkeeping around it, skipping its per-step wrapping."""
    optimizer._on_before_step()
    optimizer.optimizer.step(closure=closure)  # optimizers such as L-BFGS evaluate the closure several times
    optimizer._on_after_step()


def can_step_directly(optimizer: Any) -> bool:
    return hasattr(optimizer, "_on_before_step") and hasattr(optimizer, "_on_after_step")


def count_extra_logged_steps(trainer: Any, extra: int) -> None:
    """Make the loggers' step count ``extra`` more optimizer steps than calls this call."""
    epoch_loop = trainer.fit_loop.epoch_loop
    if hasattr(epoch_loop, "_batches_that_stepped"):
        epoch_loop._batches_that_stepped += extra


def calls_done_in_epoch(trainer: Any) -> int:
    """How many training calls of the current epoch the trainer has processed (restored on resume)."""
    return trainer.fit_loop.epoch_loop.batch_progress.current.processed


def callback_state_key(callback: Any, **identity: Any) -> str:
    """The key a callback's state is stored under in a checkpoint, as Lightning builds it."""
    return callback._generate_state_key(**identity)
