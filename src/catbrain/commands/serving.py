"""The HTTP side of catbrain-serve: what a request body may hold, and the ASGI app that answers it.

Every answer is JSON: ``{"predictions": [...]}``, or ``{"error": "..."}`` with 400 (bad input, named as
``catbrain-predict`` names it), 404, 405 or 413 (a body over the limit, counted as it arrives); an
unexpected failure is a 500 whose body names only the error's type, the details going to the server's stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

from catbrain.errors import BadInput, UsageError

if TYPE_CHECKING:
    from catbrain.predictor import Predictor

PROG = "catbrain-serve"
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_ROWS = 100_000
INLINE_BYTES = 16 * 1024  # larger bodies are read and answered in a worker thread, so /health stays quick meanwhile
MLFLOW_KEYS = ("inputs", "dataframe_split", "dataframe_records", "instances")
ENDPOINTS = {"/predict": "POST", "/invocations": "POST", "/health": "GET", "/metadata": "GET"}


class PayloadTooLarge(Exception):
    """A request body over the server's limit (HTTP 413)."""


def rows_of(payload: object, feature_names: list[str], mlflow: bool, max_rows: int = MAX_ROWS) -> list[list[float]]:
    """The rows a request body asks about: ``{"inputs": ...}`` for /predict; MLflow's payloads too for
    /invocations. A :class:`UsageError` that names what is wrong otherwise, or that there are over ``max_rows``."""
    from catbrain.commands.predict import rows_from_data

    allowed = MLFLOW_KEYS if mlflow else ("inputs",)
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
    if isinstance(value, dict):
        first = next(iter(value.values()), None)
        return len(first) if isinstance(first, list) else 1
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
    if not isinstance(data, list) or not all(isinstance(row, list) and len(row) == len(columns) for row in data):
        raise UsageError(f"dataframe_split: data must be a list of rows of {len(columns)} values, one per column")
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


def _csv_rows(body: bytes, feature_names: list[str], max_rows: int = MAX_ROWS) -> list[list[float]]:
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


def versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    import torch

    import catbrain

    found = {"catbrain": catbrain.__version__, "torch": torch.__version__, "python": platform.python_version()}
    for package in ("starlette", "uvicorn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    return found


def make_app(predictor: Predictor, max_body_bytes: int = MAX_BODY_BYTES, max_rows: int = MAX_ROWS) -> Any:
    """The ASGI application serving ``predictor``: a Starlette app whose every answer is JSON."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    predictor.eval()
    feature_names = list(predictor.feature_names or [str(i) for i in range(predictor.in_features)])
    metadata = json.dumps({**predictor.metadata(), "versions": versions()}).encode()

    def reply(content: Any, status: int = 200) -> Response:
        return Response(json.dumps(content, allow_nan=False), status, media_type="application/json")

    async def body_of(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise PayloadTooLarge
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise PayloadTooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def answer(body: bytes, csv_body: bool, mlflow: bool) -> Response:
        from catbrain.commands.predict import parse_json

        if csv_body:
            rows = _csv_rows(body, feature_names, max_rows)
        else:
            rows = rows_of(parse_json(body, "the body"), feature_names, mlflow, max_rows)
        return reply({"predictions": predictor.predict(rows)})

    async def serve_rows(request: Request, mlflow: bool) -> Response:
        try:
            body = await body_of(request)
            csv_body = mlflow and request.headers.get("content-type", "").split(";")[0].strip() == "text/csv"
            if len(body) <= INLINE_BYTES:
                return answer(body, csv_body, mlflow)
            return await run_in_threadpool(answer, body, csv_body, mlflow)
        except PayloadTooLarge:
            return reply({"error": f"the body is over the limit of {max_body_bytes} bytes (max_body_bytes)"}, 413)
        except BadInput as error:
            return reply({"error": str(error)}, 400)
        except Exception as error:  # never a traceback to the client; one line for whoever runs the server
            print(f"{PROG}: error answering {request.url.path}: {type(error).__name__}: {error}", file=sys.stderr)
            return reply({"error": f"the server failed to answer ({type(error).__name__})"}, 500)

    async def predict(request: Request) -> Response:
        return await serve_rows(request, mlflow=False)

    async def invocations(request: Request) -> Response:
        return await serve_rows(request, mlflow=True)

    async def health(request: Request) -> Response:
        return reply({"status": "ok"})

    async def describe(request: Request) -> Response:
        return Response(metadata, media_type="application/json")

    async def http_error(request: Request, error: Exception) -> Response:
        status = getattr(error, "status_code", 500)
        path = request.url.path
        if status == 404:
            message = f"no endpoint {path}; the endpoints: " + ", ".join(f"{v} {k}" for k, v in ENDPOINTS.items())
        elif status == 405:
            message = f"{request.method} {path} is not allowed; use {ENDPOINTS.get(path, 'GET')} {path}"
        else:
            message = str(getattr(error, "detail", "")) or "bad request"
        return reply({"error": message}, status)

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ping", health, methods=["GET"]),  # MLflow's name for it
        Route("/metadata", describe, methods=["GET"]),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error})
