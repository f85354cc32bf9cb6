"""The HTTP side of catbrain-serve: what a request body may hold, and the ASGI app that answers it.

Every answer is JSON: ``{"predictions": [...]}``, or ``{"error": "..."}`` with 400 (bad input, named as
``catbrain-predict`` names it), 404, 405 or 413 (a body over the limit, counted as it arrives); an
unexpected failure is a 500 whose body names only the error's type, the details going to the server's stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

from catbrain.commands.payloads import MAX_ROWS
from catbrain.errors import BadInput

if TYPE_CHECKING:
    from catbrain.predictor import Predictor

PROG = "catbrain-serve"
MAX_BODY_BYTES = 8 * 1024 * 1024
BODY_SECONDS = 30.0  # the longest a request body may take to arrive
INLINE_BYTES = 16 * 1024  # larger bodies are read and answered in a worker thread, so /health stays quick meanwhile
ENDPOINTS = {"/predict": "POST", "/invocations": "POST", "/health": "GET", "/metadata": "GET"}


class PayloadTooLarge(Exception):
    """A request body over the server's limit (HTTP 413)."""


class BodyTooSlow(Exception):
    """A request body that did not arrive in time (HTTP 408): a stalled client holds no connection for ever."""


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


def make_app(
    predictor: Predictor,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_rows: int = MAX_ROWS,
    body_seconds: float = BODY_SECONDS,
) -> Any:
    """The ASGI application serving ``predictor``: a Starlette app whose every answer is JSON."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect, Request
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

        async def read() -> None:
            nonlocal size
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_body_bytes:
                    raise PayloadTooLarge
                chunks.append(chunk)

        try:
            await asyncio.wait_for(read(), body_seconds)
        except asyncio.TimeoutError:
            raise BodyTooSlow from None
        return b"".join(chunks)

    def answer(body: bytes, csv_body: bool, mlflow: bool) -> Response:
        from catbrain.commands.payloads import csv_rows, rows_of
        from catbrain.commands.predict import parse_json

        if csv_body:
            rows = csv_rows(body, feature_names, max_rows)
        else:
            rows = rows_of(parse_json(body, "the body"), feature_names, mlflow, max_rows)
        return reply({"predictions": predictor.predict(rows)})

    async def serve_rows(request: Request, mlflow: bool) -> Response:
        try:
            body = await body_of(request)
            csv_body = mlflow and request.headers.get("content-type", "").split(";")[0].strip().lower() == "text/csv"
            if len(body) <= INLINE_BYTES:
                return answer(body, csv_body, mlflow)
            return await run_in_threadpool(answer, body, csv_body, mlflow)
        except PayloadTooLarge:
            return reply({"error": f"the body is over the limit of {max_body_bytes} bytes (max_body_bytes)"}, 413)
        except BodyTooSlow:
            return reply({"error": f"the body did not arrive within {body_seconds:g} s (body_seconds)"}, 408)
        except ClientDisconnect:  # the client hung up: nobody to answer
            return Response(status_code=499)
        except asyncio.CancelledError:  # the server is stopping (Ctrl-C) while a body is still coming
            return reply({"error": "the server is stopping"}, 503)
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
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: http_error})
    app.router.redirect_slashes = False  # /predict/ is a 404 naming the endpoints, not a redirect without a body
    return app
