"""catbrain-export: write a trained model as one file that runs without catbrain (ONNX or TorchScript).

    catbrain-export ckpt_path=best.ckpt format=onnx                  # -> best.onnx beside the checkpoint
    catbrain-export ckpt_path=best.ckpt format=torchscript out=cat.pt

The file takes raw features, float32, shape (batch, n_features) in the checkpoint's feature
order, and holds the training-time standardisation, the model, the target's unscaling and the
head: the predictor of ``catbrain.predictor``, traced. Outputs: ``prediction`` (regressors);
``score`` and ``decision`` (thresholded models); ``probabilities`` and ``decision`` (classifiers);
``prediction`` and ``quantiles`` (quantile regressors); a decision is an index into the class names.
The metadata (feature names, target name, class names, kind, thresholds, quantiles, outputs) is in the ONNX
file's ``metadata_props`` (each value JSON) or in the TorchScript file's extra file ``catbrain.json``.
ONNX needs ``pip install "catbrain[export]"``; TorchScript needs nothing beyond catbrain.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from catbrain.commands import common
from catbrain.commands.common import errors_as_one_line
from catbrain.errors import UsageError
from catbrain.predictor import Predictor
from catbrain.run.files import atomic_path

PROG = "catbrain-export"
ARGUMENTS = {
    "ckpt_path": "the checkpoint to export (required)",
    "format": "onnx or torchscript (required)",
    "out": "the file to write (default: beside the checkpoint, <ckpt stem>.onnx or .pt)",
    "trust_model": "a model class of your own that the checkpoint may name, e.g. my_package.WideNet",
    "overwrite": "true to replace an existing out file (default: refuse)",
}
SUFFIXES = {"onnx": ".onnx", "torchscript": ".pt"}
FORMATS = tuple(SUFFIXES)
INPUT_NAME = "features"
EXTRA_FILE = "catbrain.json"
ONNX_PACKAGES = ("onnx", "onnxscript")
INSTALL_HINT = 'pip install "catbrain[export]"'


def usage() -> str:
    return common.usage(__doc__, ARGUMENTS)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    """``key=value`` arguments, checked: ``ckpt_path`` and a known ``format`` are required."""
    arguments = common.key_value_arguments(argv, ARGUMENTS)
    if not arguments.get("ckpt_path"):
        raise UsageError("ckpt_path=... is required: the checkpoint to export")
    if "format" not in arguments:
        raise UsageError(f"format=... is required: one of {list(FORMATS)}")
    if arguments["format"] not in FORMATS:
        raise UsageError(f"format={arguments['format']!r} is not one of {list(FORMATS)}")
    return arguments


def output_path(ckpt_path: str, export_format: str, out: str | None = None, overwrite: bool = False) -> Path:
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
    common.refuse_existing([path], "out", overwrite)
    return path


def require_onnx() -> None:
    """Fail in one line, naming the extra to install, when the ONNX exporter's packages are missing."""
    import importlib.util

    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"format=onnx needs the packages {missing}: {INSTALL_HINT}")


def metadata(predictor: Predictor) -> dict[str, Any]:
    """What a consumer needs to know to feed the file and read its outputs."""
    n_features = len(predictor.feature_names)
    return {
        **predictor.metadata(),
        "input": f"{INPUT_NAME}: raw float32 (batch, {n_features}) in the order of feature_names",
    }


def probe_rows(wrapped: Predictor, n_rows: int = 256) -> torch.Tensor:
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


def export_torchscript(wrapped: Predictor, document: dict[str, Any], path: Path) -> None:
    """Trace the model (any batch size) and save it with the metadata as the extra file ``catbrain.json``."""
    rows = probe_rows(wrapped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream but still works
        traced = torch.jit.trace(wrapped, rows[:8], check_inputs=[(rows[:3],), (rows[:1],)])
        buffer = io.BytesIO()  # written by Python, not torch's C++ stream: a full disk is an OSError, not an abort
        torch.jit.save(traced, buffer, _extra_files={EXTRA_FILE: json.dumps(document)})
        path.write_bytes(buffer.getvalue())
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        check_same(as_tuple(loaded(rows)), as_tuple(wrapped(rows)), list(document["outputs"]), "torchscript")


def export_onnx(wrapped: Predictor, document: dict[str, Any], path: Path) -> None:
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
    path.write_bytes(proto.SerializeToString())  # by Python: a full disk is an OSError
    try:
        import onnxruntime
    except ImportError:  # verification only; the extra installs it
        return
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        for batch in (rows, rows[:1]):
            got = session.run(output_names, {INPUT_NAME: batch.numpy()})
            check_same(got, as_tuple(wrapped(batch)), output_names, "onnx")


def export(
    ckpt_path: str, export_format: str, out: str | None = None, trust_model: str | None = None, overwrite: bool = False
) -> Path:
    """Export the checkpoint's model to ``out`` (default beside the checkpoint); return the path written.

    The file is written to a temporary name in the same folder, checked against the PyTorch
    model on seeded rows, and only then renamed, so a failed export leaves no file behind.
    """
    from catbrain.commands.predict import load_predictor

    if export_format not in FORMATS:
        raise UsageError(f"format={export_format!r} is not one of {list(FORMATS)}")
    path = output_path(ckpt_path, export_format, out, overwrite)
    if export_format == "onnx":
        require_onnx()
    wrapped = load_predictor(ckpt_path, trust_model)
    document = metadata(wrapped)
    with atomic_path(path) as temporary:  # checked before it is renamed into place: a failure leaves no file
        if export_format == "onnx":
            export_onnx(wrapped, document, temporary)
        else:
            export_torchscript(wrapped, document, temporary)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    argv = common.command_line(argv, usage())
    if argv is None:
        return
    with errors_as_one_line(PROG):
        arguments = parse_arguments(argv)
        overwrite = common.overwrite_flag(arguments.get("overwrite"))
        path = export(arguments["ckpt_path"], arguments["format"], arguments.get("out"), arguments.get("trust_model"),
                      overwrite)  # fmt: skip
        print(f"{arguments['format']}: {path}")


if __name__ == "__main__":
    main()
