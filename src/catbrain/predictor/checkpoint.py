"""A checkpoint is data: read it, check every value in it, and build a predictor only from known classes.

``torch.load(weights_only=True)`` makes the tensors safe, not the rest: a checkpoint also names
its model and that model's arguments. Here a model is built only from catbrain's own classes, or
from one the user's own command names (``trusted``), never from a class the file names alone, and
only with plain values as arguments (no ``_target_`` or other object spec anywhere). The tensors
must have the shapes and dtypes the model expects, be finite, scale by positive deviations and keep
thresholds in order: a tampered file is one line, never a silent NaN answer.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from catbrain.errors import CheckpointError
from catbrain.predictor.contents import describe
from catbrain.predictor.heads import HEADS, Head
from catbrain.predictor.predictor import SCALING, Predictor

MIN_STD = 5e-9  # half the floor (1e-8) the data modules clamp a fitted standard deviation to
KNOWN_MODELS = ("catbrain.models.Linear", "catbrain.models.MLP", "catbrain.models.ThresholdedLinear")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's contents: tensors and plain containers only (``weights_only=True``); a file that is not one
    is refused in one line, torch's warnings about it (an unusual pickle protocol) silenced."""
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"ckpt_path={str(path)!r} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:
        raise CheckpointError(f"ckpt_path={str(path)!r} {unreadable(error)}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("catbrain"), dict):
        raise CheckpointError(f"ckpt_path={str(path)!r} is not a catbrain checkpoint (no 'catbrain' entry)")
    if not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"ckpt_path={str(path)!r} is not a catbrain checkpoint (no 'state_dict' entry)")
    return checkpoint


def unreadable(error: Exception) -> str:
    """Why ``torch.load`` refused a file, in catbrain's words: torch's first sentence at most, never its advice
    to load the file unsafely."""
    text = " ".join(str(error).split())
    named = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if named:  # a pickle naming code to run: not merely unreadable
        return (
            f"was refused: it holds more than weights (it names {named.group(1)!r}, code that loading would run; "
            "a checkpoint holds tensors and plain values only)"
        )
    if "WeightsUnpickler error:" in text:  # torch's own words around it are about loading unsafely
        text = text.split("WeightsUnpickler error:")[1].split(" Check the documentation")[0]
    first = re.split(r"(?<=[^.\s]{2})\. ", text.strip(), maxsplit=1)[0].rstrip(". ")
    detail = type(error).__name__ + (f": {first[:200]}" if first else "")
    return f"is not a readable checkpoint (corrupt, truncated or not a torch file: {detail})"


# What Lightning restores on a resume beyond the weights, and a run of catbrain always writes.
TRAINING_STATE = ("optimizer_states", "lr_schedulers", "loops")


def check_resumable(checkpoint: dict[str, Any]) -> None:
    """A resume needs the optimizer's and the training loop's state; a checkpoint of weights only (what a
    ``hydra/launcher=vectorized`` job writes) has none, and Lightning would fail only once the run had begun."""
    missing = [key for key in TRAINING_STATE if key not in checkpoint]
    if missing:
        raise CheckpointError(
            "it holds the model's weights only, no optimizer or training-loop state (as a hydra/launcher=vectorized "
            "job writes it), so training cannot resume from it: use it with catbrain-eval, catbrain-predict or "
            "catbrain-export (catbrain-train cannot start a new run from a checkpoint's weights)"
        )


def model_class(name: str, trusted: tuple[str, ...] = ()) -> type[nn.Module]:
    """The class ``name``: one of catbrain's models, or one the user's command named (``trusted``)."""
    if name not in KNOWN_MODELS and name not in trusted:
        known = ", ".join(n.rsplit(".", 1)[-1] for n in KNOWN_MODELS)
        raise CheckpointError(
            f"the checkpoint's model class {name[:80]!r} is not one of catbrain's models ({known}); a model of your "
            "own loads only when your command names it (predict and export: trust_model=<class>; train and eval: "
            "its model config on hydra.searchpath)"
        )
    module_name, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as error:
        raise CheckpointError(f"the model class {name!r} cannot be imported ({error})") from None
    if not (isinstance(found, type) and issubclass(found, nn.Module)):
        raise CheckpointError(f"the model class {name!r} is not an nn.Module class")
    return found


def build_model(name: str, arguments: dict[str, Any], trusted: tuple[str, ...] = ()) -> nn.Module:
    """The model ``name(**arguments)``, after its arguments bind to the signature; built on the meta device first
    so that arguments asking for absurd sizes cost nothing before they are compared with the stored tensors."""
    cls = model_class(name, trusted)
    try:
        inspect.signature(cls).bind(**arguments)
    except TypeError as error:
        raise CheckpointError(f"the checkpoint's arguments for {name} do not fit it ({error})") from None
    try:
        with torch.device("meta"):
            return cls(**arguments)
    except Exception as error:
        raise CheckpointError(
            f"the checkpoint's model {name} cannot be built ({type(error).__name__}: {error})"
        ) from None


def build_head(kind: str, arguments: dict[str, Any]) -> Head:
    try:
        return HEADS[kind](**arguments)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's {kind} head cannot be built ({error})") from None


def predictor_state(state: dict[str, Any]) -> dict[str, Any]:
    """The predictor's tensors out of a task's state dict (``predictor.*``; older files: ``model.*`` and scaling)."""
    if not all(isinstance(key, str) for key in state):
        raise CheckpointError("the stored weights are named by something other than text")
    if any(key.startswith("predictor.") for key in state):
        return {key.removeprefix("predictor."): value for key, value in state.items() if key.startswith("predictor.")}
    return {key: value for key, value in state.items() if key.startswith("model.") or key in SCALING}


def checked_state(expected: dict[str, torch.Tensor], state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The stored tensors, in the predictor's dtypes, once they are the ones it has (names, shapes, kinds of
    dtype), dense, finite after the cast, and scaled by deviations no smaller than the data modules fit."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"the stored weights do not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    cast = {}
    for key, want in expected.items():
        got = state[key]
        if not isinstance(got, torch.Tensor) or got.layout != torch.strided or got.is_meta:
            raise CheckpointError(f"the stored {key} is not a dense tensor")
        if tuple(got.shape) != tuple(want.shape):
            raise CheckpointError(f"the stored {key} has shape {tuple(got.shape)}; the model needs {tuple(want.shape)}")
        if want.is_floating_point() != got.is_floating_point() or (
            not want.is_floating_point() and got.dtype != want.dtype
        ):
            raise CheckpointError(f"the stored {key} is {got.dtype}; the model needs {want.dtype}")
        cast[key] = got.to(want.dtype)
        if cast[key].is_floating_point() and not bool(torch.isfinite(cast[key]).all()):
            raise CheckpointError(f"the stored {key} holds NaN or infinite values (as {want.dtype})")
    for key in ("input_std", "target_std"):
        if not bool((cast[key] >= MIN_STD).all()):
            raise CheckpointError(f"the stored {key} must be at least {MIN_STD:g}: it divides or scales every answer")
    return cast


def load_predictor(path: str | os.PathLike, trusted: tuple[str, ...] = ()) -> Predictor:
    """The checkpoint's predictor on the CPU in eval mode, every value in the file checked first."""
    checkpoint = read_checkpoint(path)
    with refusing(path):
        return predictor_from(checkpoint, trusted)


@contextmanager
def refusing(path: str | os.PathLike) -> Iterator[None]:
    """Name the file in a :class:`CheckpointError` raised inside."""
    try:
        yield
    except CheckpointError as error:
        if str(error).startswith("ckpt_path="):
            raise
        raise CheckpointError(f"ckpt_path={str(path)!r} was refused: {error}") from None


def predictor_from(checkpoint: dict[str, Any], trusted: tuple[str, ...] = ()) -> Predictor:
    description = describe(checkpoint)
    head = build_head(description["kind"], description["head_arguments"])
    blueprint = build_model(description["model_class"], description["model_arguments"], trusted)
    if getattr(blueprint, "in_features", None) != len(description["feature_names"]):
        raise CheckpointError(
            f"the model takes {getattr(blueprint, 'in_features', None)!r} features; "
            f"the checkpoint names {len(description['feature_names'])}"
        )
    state = predictor_state(checkpoint["state_dict"])
    expected = {f"model.{key}": value for key, value in blueprint.state_dict().items()}
    expected.update({name: torch.empty(()) for name in ("target_mean", "target_std")})
    expected.update({name: torch.empty(blueprint.in_features) for name in ("input_mean", "input_std")})
    state = checked_state(expected, state)
    model = model_class(description["model_class"], trusted)(**description["model_arguments"])
    try:
        predictor = Predictor(
            model, head, description["feature_names"], description["target_name"], description["feature_ranges"]
        )
        predictor.load_state_dict(state)
    except (ValueError, RuntimeError) as error:
        raise CheckpointError(" ".join(str(error).split())[:300]) from None
    thresholds = getattr(model, "thresholds", None)
    if thresholds is not None and not bool((thresholds.diff() > 0).all()):
        raise CheckpointError(f"the stored thresholds {thresholds.tolist()} are not strictly increasing")
    if thresholds is not None and not bool(torch.isfinite(thresholds).all()):
        raise CheckpointError("the stored thresholds hold NaN or infinite values")
    return predictor.eval().requires_grad_(False)
