"""Checkpoints written atomically: a crash during a save never replaces a good file with half of one."""

from __future__ import annotations

from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from catbrain.run.files import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Save to a temporary file beside the target, flush it to disk, then rename it over the target.

    A rename within one directory is atomic, so readers (and a process restarted after a kill)
    see either the previous complete checkpoint or the new complete one.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        with atomic_path(path, fsync=True) as temporary:
            torch.save(checkpoint, temporary)
