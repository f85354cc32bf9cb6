"""Callbacks catbrain adds to Lightning's own."""

from __future__ import annotations

from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint


class LastCheckpoint(ModelCheckpoint):
    """Keep ``<dirpath>/last.ckpt``: the latest state, to resume from.

    Saved after every epoch, or every ``every_n_train_steps`` steps (so that a killed run loses
    fewer than N steps), and always once more when training ends, so the file is the final state.
    """

    def __init__(self, dirpath: str, every_n_train_steps: int | None = None) -> None:
        super().__init__(
            dirpath=dirpath,
            monitor=None,
            save_top_k=0,
            save_last=True,
            every_n_train_steps=every_n_train_steps,
            enable_version_counter=False,
        )

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        if not trainer.sanity_checking and not trainer.fast_dev_run:
            trainer.save_checkpoint(Path(self.dirpath) / f"{self.CHECKPOINT_NAME_LAST}{self.FILE_EXTENSION}")
