"""catbrain-predict: ask a trained model about new inputs (inferencing).

    catbrain-predict ckpt_path=best.ckpt input='[[0.9, 0.8], [0.1, 0.2]]'
    catbrain-predict ckpt_path=best.ckpt input_path=objects.csv format=json

``input`` is JSON: one row ``[0.9, 0.8]``, a list of rows, or rows as objects keyed by feature
name (``[{"hardness": 0.9, "sharpness": 0.8}]``). ``input_path`` is a CSV file whose
header names the model's features (other columns are ignored); ``-`` reads standard input.
Nothing here evaluates code from the input or the checkpoint: the checkpoint builds one of
catbrain's models (or the one ``trust_model`` names) from plain values, every tensor checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from catbrain.commands import common
from catbrain.commands.common import errors_as_one_line
from catbrain.data.table import parse_number, read_columns
from catbrain.errors import UsageError

if TYPE_CHECKING:
    from catbrain.predictor import Predictor

PROG = "catbrain-predict"
ARGUMENTS = {
    "ckpt_path": "the checkpoint to use (required)",
    "input": "JSON rows, e.g. '[[0.9, 0.8], [0.1, 0.2]]'",
    "input_path": "a CSV file with a header naming the features ('-' for standard input)",
    "format": "text (default) or json",
    "trust_model": "a model class of your own that the checkpoint may name, e.g. my_package.WideNet",
}
FORMATS = ("text", "json")


def usage() -> str:
    return common.usage(__doc__, ARGUMENTS)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    arguments = common.key_value_arguments(argv, ARGUMENTS)
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


def load_predictor(ckpt_path: str, trust_model: str | None = None) -> Predictor:
    """The checkpoint's predictor, every value in the file checked (see :mod:`catbrain.predictor.checkpoint`)."""
    from catbrain.predictor import load_predictor as load

    return load(ckpt_path, trusted=(trust_model,) if trust_model else ())


def format_text(predictor: Predictor, rows: list[list[float]], answers: list[dict[str, Any]]) -> str:
    """One line per row: its inputs, then the answer as the head words it."""
    names = predictor.feature_names or []
    lines = []
    for row, answer in zip(rows, answers):
        inputs = ", ".join(f"{name}={value:g}" for name, value in zip(names, row))
        lines.append(f"{inputs} -> {predictor.describe(answer)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    argv = common.command_line(argv, usage())
    if argv is None:
        return
    with errors_as_one_line(PROG):
        arguments = parse_arguments(argv)
        predictor = load_predictor(arguments["ckpt_path"], arguments.get("trust_model"))
        feature_names = list(predictor.feature_names)
        if "input" in arguments:
            rows = rows_from_json(arguments["input"], feature_names)
        else:
            rows = rows_from_csv(arguments["input_path"], feature_names)
        answers = predictor.predict(rows)
        if arguments["format"] == "json":
            print(json.dumps(answers, allow_nan=False))  # strict JSON: NaN and Infinity are refused above
        else:
            print(format_text(predictor, rows, answers))


if __name__ == "__main__":
    main()
