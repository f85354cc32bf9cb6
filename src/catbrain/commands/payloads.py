"""What a request to catbrain-serve may ask about: ``{"inputs": ...}`` rows, MLflow's scoring payloads, a CSV body.

Each is read into rows of floats, one per feature, by the same rules as ``catbrain-predict`` (a bad value
is named by its row and feature); a request over ``max_rows`` is refused before any row is read.
"""

from __future__ import annotations

from typing import Any

from catbrain.errors import UsageError

MAX_ROWS = 100_000
MLFLOW_KEYS = ("inputs", "dataframe_split", "dataframe_records", "instances")


def rows_of(payload: object, feature_names: list[str], mlflow: bool, max_rows: int = MAX_ROWS) -> list[list[float]]:
    """The rows a request body asks about: ``{"inputs": ...}`` for /predict; MLflow's payloads too for
    /invocations. A :class:`UsageError` that names what is wrong otherwise, or that there are over ``max_rows``."""
    from catbrain.commands.predict import rows_from_data

    allowed = MLFLOW_KEYS if mlflow else ("inputs",)
    if mlflow and isinstance(payload, dict) and "params" in payload:  # MLflow's inference parameters
        if payload["params"] not in ({}, None):
            raise UsageError(f"params={payload['params']!r}: this model takes no inference parameters")
        payload = {key: value for key, value in payload.items() if key != "params"}
    if not isinstance(payload, dict) or len(payload) != 1 or next(iter(payload)) not in allowed:
        keys = list(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        example = ", ".join(f'"{name}": 0.5' for name in feature_names)
        raise UsageError(
            f"the body must be a JSON object with one key, one of {list(allowed)} (got {keys}), "
            f'e.g. {{"inputs": [{{{example}}}]}}'
        )
    key, value = next(iter(payload.items()))
    count = _row_count(key, value)
    if count > max_rows:
        raise UsageError(f"the request has {count} rows; this server answers at most {max_rows} a request "
                         "(max_rows): split it")  # fmt: skip
    if key == "dataframe_split":
        return rows_from_data(_split_records(value, feature_names), feature_names, "dataframe_split")
    if key == "dataframe_records":
        return rows_from_data(_only_features(value, feature_names), feature_names, "dataframe_records")
    if key == "inputs" and isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
        return rows_from_data(_columns_records(value, feature_names), feature_names, "inputs")
    return rows_from_data(value, feature_names, key)


def _row_count(key: str, value: object) -> int:
    """How many rows a payload holds, before any of them is read."""
    if key == "dataframe_split" and isinstance(value, dict) and isinstance(value.get("data"), list):
        return len(value["data"])
    if isinstance(value, dict):  # columns: the longest one, whether the model takes it or not
        return max([len(column) for column in value.values() if isinstance(column, list)], default=1)
    return len(value) if isinstance(value, list) else 1


def _only_features(records: object, feature_names: list[str]) -> object:
    """MLflow's records with the columns the model does not take left out (as MLflow's schema enforcement does)."""
    if isinstance(records, list) and all(isinstance(record, dict) for record in records):
        return [{k: v for k, v in record.items() if k in feature_names} for record in records]
    return records


def _split_records(split: object, feature_names: list[str]) -> object:
    """``{"columns": [...], "data": [[...]]}`` (pandas' ``split`` orient) as records keyed by column."""
    if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or "data" not in split:
        raise UsageError('dataframe_split must be {"columns": [names], "data": [[values], ...]}')
    columns, data = split["columns"], split["data"]
    twice = sorted({str(c) for c in columns if columns.count(c) > 1})
    if twice:
        raise UsageError(f"dataframe_split names the column {', '.join(twice)} twice")
    if not isinstance(data, list):
        raise UsageError(f"dataframe_split: data must be a list of rows of {len(columns)} values, one per column")
    for number, row in enumerate(data, start=1):
        if not isinstance(row, list) or len(row) != len(columns):
            size = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise UsageError(f"dataframe_split row {number} has {size}; the columns are {len(columns)}: {columns}")
    missing = [name for name in feature_names if name not in columns]
    if missing:
        raise UsageError(f"dataframe_split lacks the column {', '.join(missing)}; the model takes {feature_names}")
    positions = {name: columns.index(name) for name in feature_names}
    return [{name: row[positions[name]] for name in feature_names} for row in data]


def _columns_records(columns: dict[str, list[Any]], feature_names: list[str]) -> list[dict[str, Any]]:
    """MLflow's ``{"inputs": {"hardness": [...], "sharpness": [...]}}`` as records."""
    missing = [name for name in feature_names if name not in columns]
    if missing:
        raise UsageError(f"inputs lacks the column {', '.join(missing)}; the model takes {feature_names}")
    lengths = {len(columns[name]) for name in feature_names}
    if len(lengths) != 1:
        raise UsageError(f"inputs: the columns {feature_names} must have the same length, got {sorted(lengths)}")
    return [dict(zip(feature_names, values)) for values in zip(*(columns[name] for name in feature_names))]


def csv_rows(body: bytes, feature_names: list[str], max_rows: int = MAX_ROWS) -> list[list[float]]:
    """A CSV body (MLflow's ``text/csv``): a header naming the features, then rows."""
    import csv
    import io

    from catbrain.data.table import header_positions, parse_number
    from catbrain.errors import TableError

    try:
        reader = csv.reader(io.StringIO(body.decode("utf-8-sig")))
        header = [cell.strip() for cell in next(reader, [])]
        positions = header_positions("the CSV body", header, feature_names)
        rows = []
        for record in reader:
            if not "".join(record).strip():
                continue
            if len(record) != len(header):
                raise TableError(f"CSV body line {reader.line_num} has {len(record)} fields; the header has "
                                 f"{len(header)}")  # fmt: skip
            where = f"CSV body line {reader.line_num}, column "
            rows.append([parse_number(record[positions[name]], where + name) for name in feature_names])
            if len(rows) > max_rows:
                raise UsageError(f"the CSV body has over {max_rows} rows, the most this server answers a request "
                                 "(max_rows): split it")  # fmt: skip
    except UnicodeDecodeError:
        raise TableError("the CSV body is not UTF-8 text") from None
    except csv.Error as error:
        raise TableError(f"the CSV body is not CSV ({error})") from None
    if not rows:
        raise TableError("the CSV body has no rows")
    return rows
