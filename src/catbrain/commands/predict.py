"""catbrain-predict: ask a trained model about new inputs (inferencing).

    catbrain-predict ckpt_path=best.ckpt input='[[0.9, 0.8], [0.1, 0.2]]'
    catbrain-predict ckpt_path=best.ckpt input_path=objects.csv format=json
    catbrain-predict ckpt_path=best.ckpt input_path=objects.csv output_path=answers.csv

``input`` is JSON: one row ``[0.9, 0.8]``, a list of rows, or rows as objects keyed by feature
name (``[{"hardness": 0.9, "sharpness": 0.8}]``). ``input_path`` is a CSV file whose
header names the model's features (other columns pass through to CSV output); ``-`` reads standard
input. A file of any length is streamed (:mod:`catbrain.commands.streaming`): read, answered and
written a chunk at a time; ``output_path`` is written whole or not at all.
Nothing here evaluates code from the input or the checkpoint: the checkpoint builds one of
catbrain's models (or the one ``trust_model`` names) from plain values, every tensor checked.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catbrain.commands import common
from catbrain.commands.common import errors_as_one_line
from catbrain.data.table import parse_number
from catbrain.errors import UsageError

if TYPE_CHECKING:
    from catbrain.predictor import Predictor

PROG = "catbrain-predict"
ARGUMENTS = {
    "ckpt_path": "the checkpoint to use (required)",
    "input": "JSON rows, e.g. '[[0.9, 0.8], [0.1, 0.2]]'",
    "input_path": "a CSV file with a header naming the features ('-' for standard input)",
    "format": "text (default), json or csv (the input's columns, then the answer's); by output_path's suffix",
    "output_path": "a file for the answers (.csv, .json or text), written once every row is answered",
    "overwrite": "true to replace an existing output_path (default: refuse)",
    "trust_model": "a model class of your own that the checkpoint may name, e.g. my_package.WideNet",
}
FORMATS = ("text", "json", "csv")


def usage() -> str:
    return common.usage(__doc__, ARGUMENTS)


def parse_arguments(argv: Sequence[str]) -> dict[str, str]:
    arguments = common.key_value_arguments(argv, ARGUMENTS)
    if "ckpt_path" not in arguments:
        raise UsageError("ckpt_path=... is required")
    if ("input" in arguments) == ("input_path" in arguments):
        raise UsageError("give exactly one of input=... (JSON rows) or input_path=... (a CSV file)")
    suffix = Path(arguments.get("output_path", "")).suffix.lstrip(".")
    if arguments.setdefault("format", suffix if suffix in FORMATS else "text") not in FORMATS:
        raise UsageError(f"format={arguments['format']!r} is not one of {list(FORMATS)}")
    return arguments


def _json_integer(text: str) -> float:
    """A JSON integer as a float: an integer of any length (Python refuses int() of over 4,300 digits) is a
    number, too large or not, for the row checks to name."""
    return float(text)


def parse_json(text: str | bytes, what: str = "input") -> object:
    """JSON text as Python values, integers of any length as floats; a :class:`UsageError` naming ``what`` if it is
    not JSON."""
    try:
        return json.loads(text, parse_int=_json_integer, object_pairs_hook=_no_key_twice)
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as error:
        raise UsageError(f"{what} is not valid JSON ({error})") from None


def _no_key_twice(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object, refused when it names a key twice (which of the two values was meant?)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise UsageError(f"the JSON object names {twice!r} twice")
    return found


def rows_from_json(text: str, feature_names: list[str]) -> list[list[float]]:
    """Rows of floats from JSON text: one row, or a list of rows, each as wide as the features."""
    return rows_from_data(parse_json(text), feature_names)


def rows_from_data(data: object, feature_names: list[str], what: str = "input") -> list[list[float]]:
    """Rows of floats from parsed JSON: one row, or a list of rows (lists of numbers, or objects keyed by feature
    name), each as wide as the features; a :class:`UsageError` naming the row and feature otherwise."""
    if isinstance(data, (list, dict)) and data and not any(isinstance(item, (list, dict)) for item in data):
        data = [data]  # one row
    as_list = ", ".join("0.5" for _ in feature_names)
    as_object = ", ".join(f'"{name}": 0.5' for name in feature_names)
    example = f"[[{as_list}]] or [{{{as_object}}}]"
    if not isinstance(data, list) or not data or not all(isinstance(row, (list, dict)) for row in data):
        raise UsageError(f"{what} must be a JSON list of rows like {example}")
    rows = []
    for i, row in enumerate(data, start=1):
        if isinstance(row, dict):
            unknown = sorted(set(row) - set(feature_names))
            missing = [name for name in feature_names if name not in row]
            if unknown or missing:
                raise UsageError(
                    f"{what} row {i} must have the keys {feature_names}"
                    + (f"; it lacks {missing}" if missing else "")
                    + (f"; unknown {unknown}" if unknown else "")
                )
            row = [row[name] for name in feature_names]
        if len(row) != len(feature_names):
            expected = f"{len(feature_names)} ({', '.join(feature_names)})"
            raise UsageError(f"{what} row {i} has {len(row)} values; the model takes {expected}")
        rows.append([parse_number(value, f"{what} row {i}, {name}") for value, name in zip(row, feature_names)])
    return rows


def load_predictor(ckpt_path: str, trust_model: str | None = None) -> Predictor:
    """The checkpoint's predictor, every value in the file checked (see :mod:`catbrain.predictor.checkpoint`)."""
    from catbrain.predictor import load_predictor as load

    return load(ckpt_path, trusted=(trust_model,) if trust_model else ())


def main(argv: Sequence[str] | None = None) -> None:
    argv = common.command_line(argv, usage())
    if argv is None:
        return
    with errors_as_one_line(PROG):
        arguments = parse_arguments(argv)
        if "output_path" in arguments:
            common.refuse_existing([arguments["output_path"]], "output_path", common.overwrite_flag(
                arguments.get("overwrite")))  # fmt: skip
        predictor = load_predictor(arguments["ckpt_path"], arguments.get("trust_model"))
        answer_all(predictor, arguments)


def answer_all(predictor: Predictor, arguments: dict[str, str]) -> int:
    """Answer every input row, chunk by chunk, to standard output or ``output_path``; the rows answered."""
    import sys

    from catbrain.commands.streaming import Chunk, Output, csv_chunks
    from catbrain.run.files import atomic_path

    feature_names = list(predictor.feature_names)
    if "input" in arguments:
        rows = rows_from_json(arguments["input"], feature_names)
        chunk = Chunk(feature_names, 1)
        chunk.rows, chunk.records = rows, [[f"{value!r}" for value in row] for row in rows]
        chunks = iter([chunk])
    else:
        chunks = csv_chunks(arguments["input_path"], feature_names)
    target = arguments.get("output_path")
    with contextlib.ExitStack() as stack:
        if target:
            path = stack.enter_context(atomic_path(target))
            file = stack.enter_context(open(path, "w", newline="", encoding="utf-8"))
        else:
            file = sys.stdout
        output = Output(file, arguments["format"], predictor.describe, feature_names)
        for chunk in chunks:
            output.write(chunk, predictor.predict(chunk.rows, first_row=chunk.first_row))
        output.close()
    return output.count


if __name__ == "__main__":
    main()
