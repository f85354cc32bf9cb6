"""Callbacks that break a run on purpose (used through +callbacks.NAME=...), and a command run in-process."""

import os
import signal
from pathlib import Path

import pytorch_lightning as pl


class KillOnce(pl.Callback):
    """SIGKILL the process once training has reached ``step``, the first time only (``marker`` remembers): at the
    start of the next call, so after every callback has finished the step (``last.ckpt`` runs last)."""

    def __init__(self, step: int, marker: str) -> None:
        self.step, self.marker = step, Path(marker)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step >= self.step and not self.marker.exists():
            self.marker.write_text("killed")
            os.kill(os.getpid(), signal.SIGKILL)


class InterruptAt(pl.Callback):
    """Ctrl-C, as Lightning sees it, at the start of training epoch ``epoch``, the first time only."""

    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, Path(marker)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not self.marker.exists():
            self.marker.write_text("interrupted")
            raise KeyboardInterrupt


class PoisonBatchAt(pl.Callback):
    """Make the targets of the batch trained on at optimizer step ``step`` infinite, so the loss blows up."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        batches = batch if isinstance(batch, list) else [batch]  # a task may take several steps per call
        offset = self.step - trainer.global_step
        if 0 <= offset < len(batches):
            batches[offset][1].fill_(float("inf"))


class RecordBatches(pl.Callback):
    """Save the features of every training batch this process sees in the first epoch to ``<prefix><rank>.pt``."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.seen = prefix, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
            batches = batch if isinstance(batch, list) else [batch]
            self.seen += [b[0].detach().clone() for b in batches]

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == 0:
            import torch

            torch.save(torch.cat(self.seen), f"{self.prefix}{trainer.global_rank}.pt")


def outcome(main, capsys, arguments) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a command's ``main(arguments)`` run in-process."""
    try:
        main(arguments)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
