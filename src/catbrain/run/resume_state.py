"""What a resume restores beyond the predictor, checked: Lightning's loops, optimizer and callback state.

Lightning restores these as they are in the file, so a tampered file could otherwise turn a resume
into a different run (a negative weight decay, a loop at epoch -19), a large allocation (a 4-byte
tensor expanded to gigabytes), or a deletion (ModelCheckpoint removes the files it remembers as
worse than the best). Each value must look like one a run of this catbrain writes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import torch

from catbrain.errors import CheckpointError

MAX_CALLBACK_TENSOR = 16  # a callback's state holds scores and counters, never data
LIGHTNING_VERSION = re.compile(r"\d+\.\d+(\.\d+)?([.\-+]?[A-Za-z0-9.]*)?")


def check_resume_state(checkpoint: dict[str, Any], folder: Path) -> None:
    """Raise :class:`CheckpointError` for the first value a run of catbrain would not have written."""
    version = checkpoint.get("pytorch-lightning_version", "2.0")
    if not isinstance(version, str) or not LIGHTNING_VERSION.fullmatch(version) or int(version.split(".")[0]) < 2:
        raise CheckpointError(f"its pytorch-lightning_version {str(version)[:30]!r} is not one Lightning 2 wrote")
    for where, value in _numbers(checkpoint.get("loops") or {}, "loops"):
        if not math.isfinite(value) or value < 0:
            raise CheckpointError(f"its {where} = {value!r}: a training loop's counters are finite and not negative")
    for number, state in enumerate(checkpoint.get("optimizer_states") or []):
        groups = state.get("param_groups", []) if isinstance(state, dict) else None
        if not isinstance(groups, list):
            raise CheckpointError(f"its optimizer state {number} is not an optimizer's state")
        for where, value in _numbers(groups, f"optimizer {number} param_groups"):
            if not math.isfinite(value) or value < 0:
                raise CheckpointError(f"its {where} = {value!r}: optimizer settings are finite and not negative")
    callbacks = checkpoint.get("callbacks") or {}
    if not isinstance(callbacks, dict):
        raise CheckpointError("its callback state is not a mapping")
    for name, state in callbacks.items():
        for tensor in _tensors(state):
            if tensor.numel() > MAX_CALLBACK_TENSOR:
                raise CheckpointError(f"its callback {str(name)[:60]!r} holds a tensor of {tensor.numel()} values")
        for path in _remembered_paths(state):
            if path and Path(path).resolve().parent != folder:
                raise CheckpointError(f"its callback {str(name)[:60]!r} remembers {path[:80]!r}, outside {folder}")
    history = checkpoint.get("catbrain_history", [])
    entries = history if isinstance(history, list) else [None]
    for entry in entries:
        values = entry.values() if isinstance(entry, dict) else [None]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise CheckpointError("its catbrain_history holds something other than finite numbers per epoch")


def _numbers(node: Any, where: str):
    """``(where, value)`` for every number below ``node`` (booleans and the parameter index lists left out)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key != "params":
                yield from _numbers(value, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for position, value in enumerate(node):
            yield from _numbers(value, f"{where}[{position}]")
    elif isinstance(node, torch.Tensor) and node.numel() == 1 and node.is_floating_point():
        yield where, float(node)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield where, node


def _tensors(node: Any):
    if isinstance(node, torch.Tensor):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _tensors(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _tensors(value)


def _remembered_paths(state: Any) -> list[str]:
    """The file paths a callback's state holds (ModelCheckpoint's best and last checkpoints)."""
    if not isinstance(state, dict):
        return []
    paths = [value for key, value in state.items() if str(key).endswith("_path") and isinstance(value, str)]
    best = state.get("best_k_models")
    return paths + ([str(key) for key in best] if isinstance(best, dict) else [])
