"""What a checkpoint may hold, checked: plain values, names that are names, and only the overrides a run stores.

A checkpoint describes its predictor (kind, model class and arguments, head arguments, columns,
feature ranges) and the run's own overrides, which eval and a resume replay. Everything in it is
checked here before anything is built from it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from catbrain.errors import CheckpointError
from catbrain.predictor.heads import HEADS, ClassHead

# What a run's stored overrides may set when replayed by eval or a resume: its own data, model and task
# choices and the training settings; never hydra.*, never a key that names a path, never an object spec.
REPLAYED_ROOTS = ("experiment", "data", "model", "task", "optimizer", "scheduler", "trainer", "callbacks", "logger")
REPLAYED_VALUES = ("seed", "name", "plots")
# Key words that name a place to write or read, or objects to build: never taken from a file.
REFUSED_WORDS = ("path", "dir", "file", "uri", "url", "root", "save", "plugins")
OBJECT_SPECS = ("_target_", "_args_", "_partial_", "_recursive_", "_convert_", "${")
MAX_NAME = 200
MAX_OVERRIDES = 200
MAX_VALUES = 100_000  # plain values in one stored structure: a file of shared references cannot blow up a copy


def replayable(override: str) -> bool:
    """Whether a stored ``key=value`` override may be replayed (see ``REPLAYED_ROOTS``)."""
    key, separator, value = override.partition("=")
    deletion = key.startswith("~")
    key = key.lstrip("+~")
    if (
        not (separator or deletion)
        or not re.fullmatch(r"[A-Za-z0-9_.\-]+", key)
        or any(spec in value for spec in OBJECT_SPECS)
        or not value.isprintable()
    ):
        return False
    # Keys inside a mapping value ({dirpath: ...}) are keys too.
    inner = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*:", value)
    if any(name.startswith("_") or any(word in name.lower() for word in REFUSED_WORDS) for name in inner):
        return False
    parts = key.split(".")
    if parts[0] in REPLAYED_VALUES:
        return len(parts) == 1
    if parts[0] not in REPLAYED_ROOTS or any(part.startswith("_") for part in parts):
        return False
    if len(parts) == 1:  # a group's option (or options): names, not paths
        return re.fullmatch(r"\[?[A-Za-z0-9_\-, ]*\]?", value) is not None
    return parts[0] != "logger" and not any(word in part.lower() for part in parts[1:] for word in REFUSED_WORDS)


def stored_overrides(overrides: list[str]) -> list[str]:
    """What a run stores of its command line: the replayable overrides, less any that configure an object whose
    other overrides cannot be replayed (``+callbacks.x._target_=...`` takes ``+callbacks.x.step=3`` with it)."""
    dropped = [o.partition("=")[0].lstrip("+~").rpartition(".")[0] for o in overrides if not replayable(o)]
    parents = tuple(f"{parent}." for parent in dropped if parent)
    return [o for o in overrides if replayable(o) and not o.partition("=")[0].lstrip("+~").startswith(parents)]


def _plain(value: Any, where: str, budget: list[int] | None = None) -> Any:
    """``value`` if it is made of numbers, strings, booleans, None, lists and string-keyed dicts (no object specs),
    of at most ``MAX_VALUES`` values in all."""
    budget = [MAX_VALUES] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise CheckpointError(f"{where} holds more than {MAX_VALUES} values")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]", budget) for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str) or key.startswith("_"):
                raise CheckpointError(f"{where} holds the key {key!r}: a checkpoint may hold values, not object specs")
        return {key: _plain(item, f"{where}.{key}", budget) for key, item in value.items()}
    raise CheckpointError(f"{where} holds a {type(value).__name__}: a checkpoint may hold plain values only")


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME or not value.isprintable() or "${" in value:
        raise CheckpointError(f"{where}={str(value)[:60]!r} is not a name (printable text of 1-{MAX_NAME} characters)")
    return value


def _names(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise CheckpointError(f"{where} must be a list of names, got {type(value).__name__}")
    names = [_name(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if len(set(names)) != len(names):
        raise CheckpointError(f"{where}={names} repeats a name")
    return names


def describe(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's description, checked: kind, model class and arguments, head arguments, columns.

    Older checkpoints (without ``model`` and ``head`` entries) are described from their stored config.
    """
    info = checkpoint["catbrain"]
    kind = info.get("kind")
    if kind not in HEADS:
        raise CheckpointError(f"kind={str(kind)[:40]!r} is not one of {sorted(HEADS)}")
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    model = info.get("model")
    if model is None:  # written before checkpoints named their model and head themselves
        stored = config.get("model") if isinstance(config.get("model"), dict) else {}
        model = {"class": stored.get("_target_"), "arguments": {k: v for k, v in stored.items() if k != "_target_"}}
    if not isinstance(model, dict) or not isinstance(model.get("class"), str):
        raise CheckpointError("the checkpoint names no model class")
    head = info.get("head")
    if head is None:
        head = {"class_names": info.get("class_names")} if issubclass(HEADS[kind], ClassHead) else {}
        if kind == "ordinal":
            head["link"] = (config.get("task") or {}).get("link", "probit")
    if not isinstance(head, dict) or not isinstance(model.get("arguments", {}), dict):
        raise CheckpointError("the checkpoint's model and head arguments must be mappings")
    target_name = info.get("target_name")
    ranges = info.get("feature_ranges") or {}
    description = {
        "kind": kind,
        "model_class": _name(model["class"], "model class"),
        "model_arguments": _plain(model.get("arguments", {}), "model arguments"),
        "head_arguments": _plain(head, "head arguments"),
        "class_names": _names(head["class_names"], "class_names") if head.get("class_names") else None,
        "feature_names": _names(info.get("feature_names"), "feature_names"),
        "target_name": None if target_name is None else _name(target_name, "target_name"),
        "feature_ranges": _plain(ranges, "feature_ranges"),
        "overrides": _overrides(info.get("overrides", []), info.get("format", 1)),
    }
    for name, bounds in description["feature_ranges"].items():
        if name not in description["feature_names"] or not _is_range(bounds):
            shown = str(bounds)[:60]
            raise CheckpointError(f"feature_ranges[{name[:40]!r}]={shown!r}: must be [low, high] of a feature")
    return description


def _overrides(overrides: Any, written_as: Any) -> list[str]:
    """The replayable overrides; a checkpoint that stores any other was not written by catbrain and is refused
    (files from before overrides were filtered when saved keep their replayable ones)."""
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise CheckpointError("the stored overrides must be a list of key=value texts")
    if len(overrides) > MAX_OVERRIDES:
        raise CheckpointError(f"it stores {len(overrides)} overrides; a run stores at most {MAX_OVERRIDES}")
    refused = [o for o in overrides if not replayable(o)]
    if refused and written_as != 1:
        raise CheckpointError(
            f"it stores the override {refused[0][:80]!r}; a run stores only its data, model, task and training "
            "choices (no hydra.*, no paths, no object specs)"
        )
    return [o for o in overrides if replayable(o)]


def _is_range(bounds: Any) -> bool:
    return (
        isinstance(bounds, list)
        and len(bounds) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
        and bounds[0] <= bounds[1]
    )
