"""catbrain-predict: ask a trained model about new inputs (inferencing).

    catbrain-predict ckpt_path=best.ckpt input='[[0.9, 0.8], [0.1, 0.2]]'
    catbrain-predict ckpt_path=best.ckpt input_path=objects.csv format=json

``input`` is JSON: one row ``[0.9, 0.8]``, a list of rows, or rows as objects keyed by feature
name (``[{"hardness": 0.9, "sharpness": 0.8}]``). ``input_path`` is a CSV file whose
header names the model's features (other columns are ignored); ``-`` reads standard input.
Nothing here evaluates code from the input or the checkpoint.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from catbrain import _cli
from catbrain._cli import UsageError, die_quietly_on_broken_pipe, errors_as_one_line, load_checkpoint
from catbrain.data.table import parse_number, read_columns

PROG = "catbrain-predict"
ARGUMENTS = {
    "ckpt_path": "the checkpoint to use (required)",
    "input": "JSON rows, e.g. '[[0.9, 0.8], [0.1, 0.2]]'",
    "input_path": "a CSV file with a header naming the features ('-' for standard input)",
    "format": "text (default) or json",
}
FORMATS = ("text", "json")


def usage() -> str:
    return _cli.usage(__doc__, ARGUMENTS)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    arguments = _cli.key_value_arguments(argv, ARGUMENTS)
    if "ckpt_path" not in arguments:
        raise UsageError("ckpt_path=... is required")
    if ("input" in arguments) == ("input_path" in arguments):
        raise UsageError("give exactly one of input=... (JSON rows) or input_path=... (a CSV file)")
    if arguments.setdefault("format", "text") not in FORMATS:
        raise UsageError(f"format={arguments['format']!r} is not one of {list(FORMATS)}")
    return arguments


def rows_from_json(text: str, feature_names: list[str]) -> list[list[float]]:
    """Rows of floats from JSON text: one row, or a list of rows, each as wide as the features."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        raise UsageError(f"input is not valid JSON ({error})") from None
    if isinstance(data, (list, dict)) and data and not any(isinstance(item, (list, dict)) for item in data):
        data = [data]  # one row
    as_list = ", ".join("0.5" for _ in feature_names)
    as_object = ", ".join(f'"{name}": 0.5' for name in feature_names)
    example = f"[[{as_list}]] or [{{{as_object}}}]"
    if not isinstance(data, list) or not data or not all(isinstance(row, (list, dict)) for row in data):
        raise UsageError(f"input must be a JSON list of rows like {example}")
    rows = []
    for i, row in enumerate(data, start=1):
        if isinstance(row, dict):
            unknown = sorted(set(row) - set(feature_names))
            missing = [name for name in feature_names if name not in row]
            if unknown or missing:
                raise UsageError(
                    f"input row {i} must have the keys {feature_names}"
                    + (f"; it lacks {missing}" if missing else "")
                    + (f"; unknown {unknown}" if unknown else "")
                )
            row = [row[name] for name in feature_names]
        if len(row) != len(feature_names):
            expected = f"{len(feature_names)} ({', '.join(feature_names)})"
            raise UsageError(f"input row {i} has {len(row)} values; the model takes {expected}")
        rows.append([parse_number(value, f"input row {i}, {name}") for value, name in zip(row, feature_names)])
    return rows


def rows_from_csv(path: str, feature_names: list[str]) -> list[list[float]]:
    """Rows of floats from the feature columns of a CSV file with a header."""
    columns = read_columns(path, feature_names)
    return [list(row) for row in zip(*(columns[name] for name in feature_names))]


def load_predictor(ckpt_path: str) -> tuple[Any, dict[str, Any], Any]:
    """The plain model of a checkpoint with its input and output scaling, without Lightning."""
    import torch
    from hydra.utils import instantiate

    checkpoint = load_checkpoint(ckpt_path)
    info = checkpoint["catbrain"]
    model = instantiate(info["config"]["model"])
    state = checkpoint["state_dict"]
    model.load_state_dict(
        {key.removeprefix("model."): value for key, value in state.items() if key.startswith("model.")}
    )
    model.eval()
    n_features = len(info["feature_names"])
    scaling = {
        "input_mean": state.get("input_mean", torch.zeros(n_features)),
        "input_std": state.get("input_std", torch.ones(n_features)),
        "target_mean": state.get("target_mean", torch.zeros(())),
        "target_std": state.get("target_std", torch.ones(())),
    }
    return model, info, scaling


def predict(model: Any, info: dict[str, Any], scaling: dict[str, Any], rows: list[list[float]]) -> list[dict[str, Any]]:
    """One result per row: ``prediction`` (a number or a class name); classifiers add each class's
    ``probabilities``; thresholded models add the ``score`` and its ``margins``: the signed distance to
    each threshold, named by the two classes it separates. A row with a feature outside the range seen in
    training names those features in ``outside_training_range``: the model is guessing there."""
    results = answers(model, info, scaling, rows)
    ranges = info.get("feature_ranges") or {}
    for row, result in zip(rows, results):
        outside = [name for name, value in zip(info["feature_names"], row) if not _within(value, ranges.get(name))]
        if outside:
            result["outside_training_range"] = outside
    return results


def _within(value: float, bounds: list[float] | None) -> bool:
    return bounds is None or bounds[0] <= value <= bounds[1]


def answers(model: Any, info: dict[str, Any], scaling: dict[str, Any], rows: list[list[float]]) -> list[dict[str, Any]]:
    """The model's answer for each row (see :func:`predict`)."""
    import torch

    features = torch.tensor(rows, dtype=torch.float32)
    with torch.no_grad():
        output = model((features - scaling["input_mean"]) / scaling["input_std"])
        output = output * scaling["target_std"] + scaling["target_mean"]
    kind, class_names = info["kind"], info.get("class_names")
    if kind in ("threshold", "ordinal"):  # a thresholded score
        decisions = model.decide(output)
        thresholds = model.thresholds.tolist()
        boundaries = [f"{lower}|{upper}" for lower, upper in zip(class_names, class_names[1:])]
        return [
            {
                "prediction": class_names[int(d)],
                "score": float(s),
                # How far the score lies above (+) or below (-) each threshold between two classes.
                "margins": {b: {"threshold": t, "distance": float(s) - t} for b, t in zip(boundaries, thresholds)},
            }
            for d, s in zip(decisions.tolist(), output.tolist())
        ]
    if kind == "classification":
        probabilities = torch.softmax(output, dim=-1)
        return [
            {"prediction": class_names[int(row.argmax())], "probabilities": dict(zip(class_names, row.tolist()))}
            for row in probabilities
        ]
    return [{"prediction": float(value)} for value in output.reshape(len(rows), -1)[:, 0].tolist()]


def format_text(rows: list[list[float]], results: list[dict[str, Any]], feature_names: list[str]) -> str:
    lines = []
    for row, result in zip(rows, results):
        inputs = ", ".join(f"{name}={value:g}" for name, value in zip(feature_names, row))
        prediction = result["prediction"]
        shown = f"{prediction:.4f}" if isinstance(prediction, float) else prediction
        if "probabilities" in result:
            shown += f"  (probability {result['probabilities'][prediction]:.3f})"
        score = ""
        if "score" in result:
            margins = ", ".join(
                f"{m['distance']:+.3f} from {m['threshold']:+g} ({boundary})"
                for boundary, m in result["margins"].items()
            )
            score = f"  (score {result['score']:+.4f}: {margins})"
        outside = result.get("outside_training_range")
        warning = f"  [outside the training range: {', '.join(outside)}]" if outside else ""
        lines.append(f"{inputs} -> {shown}{score}{warning}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    if argv is None:  # run as a command
        die_quietly_on_broken_pipe()
        argv = sys.argv[1:]
    if any(argument in ("-h", "--help") for argument in argv):
        print(usage())
        return
    with errors_as_one_line(PROG):
        arguments = parse_arguments(argv)
        model, info, scaling = load_predictor(arguments["ckpt_path"])
        feature_names = list(info["feature_names"])
        if "input" in arguments:
            rows = rows_from_json(arguments["input"], feature_names)
        else:
            rows = rows_from_csv(arguments["input_path"], feature_names)
        results = predict(model, info, scaling, rows)
        if arguments["format"] == "json":
            print(json.dumps(results))
        else:
            print(format_text(rows, results, feature_names))


if __name__ == "__main__":
    main()
