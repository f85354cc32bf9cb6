"""catbrain-export: write a trained model as one file that runs without catbrain (ONNX or TorchScript).

    catbrain-export ckpt_path=best.ckpt format=onnx                  # -> best.onnx beside the checkpoint
    catbrain-export ckpt_path=best.ckpt format=torchscript out=cat.pt

The file takes raw features, float32, shape (batch, n_features) in the checkpoint's feature
order, and holds the training-time standardisation, the model and the target's unscaling.
Outputs: ``prediction`` (regressors); ``score`` and ``decision`` (thresholded models);
``probabilities`` and ``decision`` (classifiers); a decision is an index into the class names.
The metadata (feature names, target name, class names, kind, thresholds, outputs) is in the ONNX
file's ``metadata_props`` (each value JSON) or in the TorchScript file's extra file ``catbrain.json``.
ONNX needs ``pip install "catbrain[export]"``; TorchScript needs nothing beyond catbrain.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from catbrain import _cli
from catbrain._cli import UsageError, errors_as_one_line
from catbrain.runs import usual_permissions

PROG = "catbrain-export"
ARGUMENTS = {
    "ckpt_path": "the checkpoint to export (required)",
    "format": "onnx or torchscript (required)",
    "out": "the file to write (default: beside the checkpoint, <ckpt stem>.onnx or .pt)",
}
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
FORMATS = tuple(SUFFIXES)
INPUT_NAME = "features"
OUTPUTS = {
    "regression": {"prediction": "the predicted target, in its own units, float32 (batch,)"},
    "threshold": {
        "score": "the score in the target's own units, float32 (batch,)",
        "decision": "index into class_names, int64 (batch,): how many thresholds the score has passed",
    },
    "ordinal": {
        "score": "the score (learned from decisions, so in units of its noise), float32 (batch,)",
        "decision": "index into class_names, int64 (batch,): how many learned thresholds the score has passed",
    },
    "classification": {
        "probabilities": "softmax over class_names, float32 (batch, classes)",
        "decision": "index into class_names of the largest logit, int64 (batch,)",
    },
}
THRESHOLDED = ("threshold", "ordinal")
EXTRA_FILE = "catbrain.json"
ONNX_PACKAGES = ("onnx", "onnxscript")
INSTALL_HINT = 'pip install "catbrain[export]"'


class RawFeatureModel(nn.Module):
    """A trained model with its scaling around it: raw features in, the outputs of ``OUTPUTS[kind]`` out.

    The same arithmetic as ``catbrain-predict``, as one module, so that an exported graph needs
    nothing else. A thresholded model's decision uses comparisons that ONNX runtimes implement
    (ONNX Runtime has no ``Where`` on booleans) and sends ties where the model's ``decide`` does.
    """

    def __init__(self, model: nn.Module, scaling: dict[str, torch.Tensor], kind: str) -> None:
        super().__init__()
        if kind not in OUTPUTS:
            raise UsageError(f"the checkpoint's kind={kind!r} is not one of {sorted(OUTPUTS)}")
        self.model = model
        self.kind = kind
        for name in ("input_mean", "input_std", "target_mean", "target_std"):
            self.register_buffer(name, scaling[name].detach().to(torch.float32).clone())
        if kind in THRESHOLDED:  # learned thresholds are computed from parameters: keep their values
            self.register_buffer("thresholds", model.thresholds.detach().to(torch.float32).clone())

    def forward(self, features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        output = self.model((features - self.input_mean) / self.input_std)
        output = output * self.target_std + self.target_mean
        if self.kind == "classification":
            return torch.softmax(output, dim=-1), output.argmax(dim=-1)
        if self.kind in THRESHOLDED:
            score = output.unsqueeze(-1)
            thresholds, tie_goes_up = self.thresholds, self.model.tie_goes_up
            passed = (score > thresholds) | (tie_goes_up & (score == thresholds))
            return output, passed.sum(dim=-1)
        return output


def usage() -> str:
    return _cli.usage(__doc__, ARGUMENTS)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """``key=value`` arguments, checked: ``ckpt_path`` and a known ``format`` are required."""
    arguments = _cli.key_value_arguments(argv, ARGUMENTS)
    if not arguments.get("ckpt_path"):
        raise UsageError("ckpt_path=... is required: the checkpoint to export")
    if "format" not in arguments:
        raise UsageError(f"format=... is required: one of {list(FORMATS)}")
    if arguments["format"] not in FORMATS:
        raise UsageError(f"format={arguments['format']!r} is not one of {list(FORMATS)}")
    return arguments


def output_path(ckpt_path: str, export_format: str, out: str | None = None) -> Path:
    """Where the file goes: ``out``, or ``<ckpt stem>.onnx`` / ``.pt`` beside the checkpoint; its folder must exist."""
    path = Path(out) if out else Path(ckpt_path).with_suffix(SUFFIXES[export_format])
    if path.is_dir():
        raise UsageError(
            f"out={str(path)!r} is a directory; give a file name, e.g. out={path / ('model' + SUFFIXES[export_format])}"
        )
    if not path.parent.is_dir():
        raise UsageError(f"out={str(path)!r}: the directory {str(path.parent)!r} does not exist")
    if path.exists() and path.resolve() == Path(ckpt_path).resolve():
        raise UsageError(f"out={str(path)!r} is the checkpoint itself; give another out=...")
    return path


def require_onnx() -> None:
    """Fail in one line, naming the extra to install, when the ONNX exporter's packages are missing."""
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"format=onnx needs the packages {missing}: {INSTALL_HINT}")


def metadata(info: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """What a consumer needs to know to feed the file and read its outputs."""
    kind = info["kind"]
    thresholds = model.thresholds.tolist() if kind in THRESHOLDED else None
    return {
        "kind": kind,
        "feature_names": list(info["feature_names"]),
        "target_name": info.get("target_name"),
        "class_names": list(info["class_names"]) if info.get("class_names") else None,
        "thresholds": thresholds,
        "feature_ranges": info.get("feature_ranges"),  # [min, max] of each feature in training
        "input": f"{INPUT_NAME}: raw float32 (batch, {len(info['feature_names'])}) in the order of feature_names",
        "outputs": OUTPUTS[kind],
    }


def probe_rows(wrapped: RawFeatureModel, n_rows: int = 256) -> torch.Tensor:
    """Seeded raw rows around the training data (its mean and spread), to trace and to verify with."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(n_rows, len(wrapped.input_mean), generator=generator)
    return wrapped.input_mean + 2 * wrapped.input_std * noise


def as_tuple(outputs: Any) -> tuple[torch.Tensor, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def check_same(
    exported: Sequence[Any], expected: Sequence[torch.Tensor], names: Sequence[str], what: str, rtol: float = 1e-5
) -> None:
    """The exported file's outputs against the PyTorch model's: values within ``rtol``, decisions equal."""
    for name, got, want in zip(names, exported, expected):
        got = torch.as_tensor(got)
        if got.shape != want.shape:
            raise RuntimeError(
                f"the exported {what} file gives {name} of shape {tuple(got.shape)}, not {tuple(want.shape)}"
            )
        if want.is_floating_point():
            close = torch.isclose(got, want, rtol=rtol, atol=rtol * float(want.abs().max().clamp(min=1e-6)))
        else:
            close = got == want
        if not bool(close.all()):
            raise RuntimeError(f"the exported {what} file disagrees with the PyTorch model on {name}")


def export_torchscript(wrapped: RawFeatureModel, document: dict[str, Any], path: Path) -> None:
    """Trace the model (any batch size) and save it with the metadata as the extra file ``catbrain.json``."""
    rows = probe_rows(wrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream but still works
        traced = torch.jit.trace(wrapped, rows[:8], check_inputs=[(rows[:3],), (rows[:1],)])
        torch.jit.save(traced, str(path), _extra_files={EXTRA_FILE: json.dumps(document)})
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        check_same(as_tuple(loaded(rows)), as_tuple(wrapped(rows)), list(document["outputs"]), "torchscript")


def export_onnx(wrapped: RawFeatureModel, document: dict[str, Any], path: Path) -> None:
    """Export with torch's torch.export-based exporter, dynamic batch, named inputs and outputs, metadata as JSON."""
    import onnx

    rows = probe_rows(wrapped)
    output_names = list(document["outputs"])
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # it would list the torchvision operators it skips, which none of ours use
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
            program = torch.onnx.export(
                wrapped,
                (rows[:8],),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=output_names,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    proto = program.model_proto
    proto.doc_string = "catbrain model: " + document["input"]
    onnx.helper.set_model_props(proto, {key: json.dumps(value) for key, value in document.items()})
    onnx.checker.check_model(proto)
    onnx.save_model(proto, str(path))
    try:
        import onnxruntime
    except ImportError:  # verification only; the extra installs it
        return
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for batch in (rows, rows[:1]):
            got = session.run(output_names, {INPUT_NAME: batch.numpy()})
            check_same(got, as_tuple(wrapped(batch)), output_names, "onnx")


def export(ckpt_path: str, export_format: str, out: str | None = None) -> Path:
    """Export the checkpoint's model to ``out`` (default beside the checkpoint); return the path written.

    The file is written to a temporary name in the same folder, checked against the PyTorch
    model on seeded rows, and only then renamed, so a failed export leaves no file behind.
    """
    from catbrain.predict import load_predictor

    if export_format not in FORMATS:
        raise UsageError(f"format={export_format!r} is not one of {list(FORMATS)}")
    path = output_path(ckpt_path, export_format, out)
    if export_format == "onnx":
        require_onnx()
    model, info, scaling = load_predictor(ckpt_path)
    wrapped = RawFeatureModel(model, scaling, info["kind"]).eval().requires_grad_(False)
    document = metadata(info, model)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        if export_format == "onnx":
            export_onnx(wrapped, document, Path(temporary))
        else:
            export_torchscript(wrapped, document, Path(temporary))
        usual_permissions(temporary)  # a file to hand on: the usual permissions, not mkstemp's owner-only
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def main(argv: Sequence[str] | None = None) -> None:
    if argv is None:  # run as a command
        argv = sys.argv[1:]
    if any(argument in ("-h", "--help") for argument in argv):
        print(usage())
        return
    with errors_as_one_line(PROG):
        arguments = parse_arguments(argv)
        path = export(arguments["ckpt_path"], arguments["format"], arguments.get("out"))
        print(f"{arguments['format']}: {path}")


if __name__ == "__main__":
    main()
