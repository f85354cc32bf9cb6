"""Read named columns of a CSV file, refusing anything malformed with a message that names the place.

Plain ``csv`` parsing and ``float()``: nothing in a file is ever evaluated as code.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from catbrain.errors import TableError

FLOAT32_MAX = 3.4028234663852886e38


def parse_number(text: object, where: str, limit: float = FLOAT32_MAX) -> float:
    """``text`` as a finite float within ``+-limit``, or a :class:`TableError` naming ``where``."""
    if (
        isinstance(text, bool)
        or not isinstance(text, (int, float, str))
        or (isinstance(text, str) and (not text.isascii() or "_" in text))  # Python's float() takes "1_0"
    ):
        raise TableError(f"{where}: {text!r} is not a number")
    try:
        number = float(text)
    except (ValueError, OverflowError):
        raise TableError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(number):
        raise TableError(f"{where}: {text!r} is not a finite number")
    if abs(number) > FLOAT32_MAX:
        raise TableError(f"{where}: {text!r} is beyond the float32 range (+-{FLOAT32_MAX:.3g})")
    if abs(number) > limit:
        raise TableError(f"{where}: {text!r} is too large to train on (beyond +-{limit:.0e}, its square would "
                         "overflow float32): rescale the column")  # fmt: skip
    return number


def header_positions(name: str, header: list[str], wanted: Sequence[str]) -> dict[str, int]:
    """Where each ``wanted`` column is in ``header``; a :class:`TableError` when one is missing or repeated."""
    if not any(header):
        raise TableError(f"{name} is empty; expected a header naming {', '.join(wanted)}")
    repeated = sorted({column for column in wanted if header.count(column) > 1})
    if repeated:
        raise TableError(f"{name} has the column {', '.join(repeated)} more than once in its header")
    missing = [column for column in wanted if column not in header]
    if missing:
        import difflib

        near = difflib.get_close_matches(missing[0], header, n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise TableError(f"{name} has no column {', '.join(missing)}{hint}; its header is {', '.join(header)}")
    return {column: header.index(column) for column in wanted}


def read_columns(
    path: str | Path, numeric: Sequence[str], labels: Sequence[str] = (), limit: float = FLOAT32_MAX
) -> dict[str, list]:
    """The ``numeric`` columns as floats (within ``+-limit``) and the ``labels`` columns as stripped strings, by
    header name.

    ``path`` may be ``-`` for standard input. Other columns are ignored.
    """
    name = "<stdin>" if str(path) == "-" else str(path)
    if str(path) == "-":
        text = sys.stdin.read().removeprefix("\ufeff")  # a byte-order mark, as utf-8-sig takes it from a file
    else:
        file = Path(path)
        if not file.is_file():
            raise TableError(f"{name} does not exist or is not a file")
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise TableError(f"{name} is not UTF-8 text") from None
    reader = csv.reader(io.StringIO(text))
    wanted = [*numeric, *labels]
    columns: dict[str, list] = {column: [] for column in wanted}
    try:
        header = [cell.strip() for cell in next(reader, [])]
        position = header_positions(name, header, wanted)
        for line, record in enumerate(reader, start=2):
            _take(record, line, name, header, numeric, labels, position, columns, limit)
    except csv.Error as error:  # a field over the csv module's limit (128 KiB), a stray NUL
        raise TableError(f"{name} line {reader.line_num}: not a CSV row ({error})") from None
    if not columns[wanted[0]]:
        raise TableError(f"{name} has a header but no rows")
    return columns


def _take(record: list[str], line: int, name: str, header: list[str], numeric: Sequence[str],
          labels: Sequence[str], position: dict[str, int], columns: dict[str, list], limit: float) -> None:  # fmt: skip
    """Add one CSV record's wanted cells to ``columns``, refusing a malformed one with its place."""
    if not record or all(not cell.strip() for cell in record):
        return
    if len(record) != len(header):
        raise TableError(f"{name} line {line} has {len(record)} fields; the header has {len(header)}")
    for column in numeric:
        where = f"{name} line {line}, column {column}"
        columns[column].append(parse_number(record[position[column]], where, limit))
    for column in labels:
        label = record[position[column]].strip()
        if not label:
            raise TableError(f"{name} line {line}, column {column} is empty")
        columns[column].append(label)
