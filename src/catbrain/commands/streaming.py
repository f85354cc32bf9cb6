"""Predictions for a file of any length: read a chunk of rows, answer it, write it, read the next.

Memory stays that of one chunk whatever the file's length, and the first answers are written
before the last row is read. The answers go to standard output (text, JSON or CSV) or to
``output_path``, written to a temporary file renamed into place only once every row has been
answered, so a bad row (named by its line) leaves no half-written file. With CSV out, every
input column passes through (an id column keeps each answer with its row), then the answer's
columns: ``prediction``, the head's own (``probabilities/<class>``, ``score``,
``margins/<a|b>/distance``, ``quantiles/<level>``), and ``outside_training_range``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from catbrain.data.table import header_positions, parse_number
from catbrain.errors import TableError, UsageError
from catbrain.predictor.predictor import flat_answer

CHUNK_ROWS = 8_192
OUTSIDE = "outside_training_range"


class Chunk:
    """Rows of a CSV: the records as read (for passing through) and the model's features as floats."""

    def __init__(self, header: list[str], first_row: int) -> None:
        self.header, self.first_row = header, first_row
        self.records: list[list[str]] = []
        self.rows: list[list[float]] = []


def csv_chunks(path: str, feature_names: list[str], chunk_rows: int | None = None) -> Iterator[Chunk]:
    """Chunks of up to ``chunk_rows`` (:data:`CHUNK_ROWS`) rows of the CSV at ``path`` (``-``: standard input),
    read as they come."""
    chunk_rows = chunk_rows or CHUNK_ROWS
    name = "<stdin>" if path == "-" else path
    with ExitStack() as stack:
        if path == "-":
            file: IO[str] = sys.stdin
        else:
            if not Path(path).is_file():
                raise TableError(f"{name} does not exist or is not a file")
            file = stack.enter_context(open(path, encoding="utf-8-sig", newline=""))
        reader = csv.reader(_no_bom(file))
        try:
            header = [cell.strip() for cell in next(reader, [])]
            position = header_positions(name, header, feature_names)
            chunk, seen = Chunk(header, 1), 0
            for record in reader:
                if not record or not "".join(record).strip():  # a blank line
                    continue
                line = reader.line_num
                if len(record) != len(header):
                    raise TableError(f"{name} line {line} has {len(record)} fields; the header has {len(header)}")
                where = f"{name} line {line}, column "
                chunk.rows.append([parse_number(record[position[f]], where + f) for f in feature_names])
                chunk.records.append(record)
                seen += 1
                if len(chunk.rows) == chunk_rows:
                    yield chunk
                    chunk = Chunk(header, seen + 1)
        except UnicodeDecodeError:
            raise TableError(f"{name} is not UTF-8 text") from None
        except csv.Error as error:  # a field over the csv module's limit (128 KiB), a stray NUL
            raise TableError(f"{name} line {reader.line_num}: not a CSV row ({error})") from None
        if seen == 0:
            raise TableError(f"{name} has a header but no rows")
        if chunk.rows:
            yield chunk


def _no_bom(lines: IO[str]) -> Iterator[str]:
    """The lines of ``lines``, a byte-order mark at the very start left out (standard input may carry one)."""
    first = True
    for text in lines:
        yield text.removeprefix("\ufeff") if first else text
        first = False


class Output:
    """Where the answers go, chunk by chunk, in ``text``, ``json`` (one array) or ``csv``."""

    def __init__(self, file: IO[str], out_format: str, describe: Any, feature_names: list[str]) -> None:
        self.file, self.format, self.describe, self.feature_names = file, out_format, describe, feature_names
        self.writer: Any = None
        self.columns: list[str] = []
        self.count = 0

    def write(self, chunk: Chunk, answers: list[dict[str, Any]]) -> None:
        if self.format == "json":
            text = json.dumps(answers, allow_nan=False)[1:-1]  # the chunk's objects, as one list would hold them
            self.file.write(("[" if self.count == 0 else ", ") + text)
        elif self.format == "csv":
            self._write_csv(chunk, answers)
        else:
            names = self.feature_names
            for row, answer in zip(chunk.rows, answers):
                inputs = ", ".join(f"{name}={value:g}" for name, value in zip(names, row))
                self.file.write(f"{inputs} -> {self.describe(answer)}\n")
        self.count += len(answers)

    def _write_csv(self, chunk: Chunk, answers: list[dict[str, Any]]) -> None:
        if self.writer is None:
            first = flat_answer(answers[0])
            self.columns = [key for key in first if key != OUTSIDE] + [OUTSIDE]
            clash = sorted(set(self.columns) & set(chunk.header))
            if clash:
                raise UsageError(f"the input's column {clash[0]!r} is also an answer column; rename it in the input")
            self.writer = csv.writer(self.file, lineterminator="\n")
            self.writer.writerow([*chunk.header, *self.columns])
        for record, answer in zip(chunk.records, answers):
            cells = flat_answer(answer)
            self.writer.writerow([*record, *(cells.get(column, "") for column in self.columns)])

    def close(self) -> None:
        if self.format == "json":
            self.file.write(("[" if self.count == 0 else "") + "]\n")
        self.file.flush()
