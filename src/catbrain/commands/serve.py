"""catbrain-serve: a trained model answering over HTTP (inferencing as a service).

    catbrain-serve ckpt_path=best.ckpt                   # http://127.0.0.1:8000, this machine only
    catbrain serve ckpt_path=best.ckpt port=9000
    curl -d '{"inputs": [[0.9, 0.8]]}' http://127.0.0.1:8000/predict

Endpoints (JSON in, JSON out):

    POST /predict      {"inputs": [[0.9, 0.8], ...]} or {"inputs": [{"hardness": 0.9, "sharpness": 0.8}]}
                       -> {"predictions": [...]}, each the object `catbrain-predict format=json` prints
    POST /invocations  MLflow's scoring payloads: {"inputs": rows or {feature: [values]}},
                       {"dataframe_split": {"columns": [...], "data": [[...]]}}, {"dataframe_records": [...]},
                       {"instances": rows}; or a CSV body (Content-Type: text/csv) -> {"predictions": [...]}
    GET  /health       {"status": "ok"}
    GET  /metadata     features, target, classes, thresholds, kind, outputs, versions

Bad input is HTTP 400 with {"error": "..."} naming the row and feature; a body over max_body_bytes is 413.
The server listens on 127.0.0.1 unless ``host`` says otherwise: it has no authentication, so put it behind
one before you open it to a network. The checkpoint is read as data (see ``catbrain-predict``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from catbrain.commands import common
from catbrain.commands.common import errors_as_one_line
from catbrain.commands.payloads import MAX_ROWS
from catbrain.commands.serving import BODY_SECONDS, MAX_BODY_BYTES
from catbrain.errors import UsageError

PROG = "catbrain-serve"
ARGUMENTS = {
    "ckpt_path": "the checkpoint to serve (required)",
    "host": "the address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)",
    "port": "the port (default 8000; 0: any free port, printed at start)",
    "max_body_bytes": "the largest request body accepted; larger ones get 413 (default 8388608, 8 MiB)",
    "max_rows": "the most rows a request may ask about; more get 400 (default 100000)",
    "body_seconds": "the longest a request body may take to arrive; a slower one gets 408 (default 30)",
    "threads": "torch threads for answering (default 1: the fastest for small requests on a busy machine)",
    "access_log": "true to print a line per request (default false)",
    "trust_model": "a model class of your own that the checkpoint may name, e.g. my_package.WideNet",
}


def usage() -> str:
    return common.usage(__doc__, ARGUMENTS)


def _integer(arguments: dict[str, str], key: str, default: int, low: int, high: int) -> int:
    text = arguments.get(key)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise UsageError(f"{key}={text!r}: must be an integer from {low} to {high}")
    return value


def parse_arguments(argv: Sequence[str]) -> dict[str, Any]:
    """The command line as settings, each value checked before the checkpoint is read."""
    arguments = common.key_value_arguments(argv, ARGUMENTS)
    if "ckpt_path" not in arguments:
        raise UsageError("ckpt_path=... is required")
    host = arguments.get("host", "127.0.0.1")
    if not host or any(c.isspace() for c in host):
        raise UsageError(f"host={host!r}: must be an address such as 127.0.0.1 or 0.0.0.0")
    access_log = arguments.get("access_log", "false")
    if access_log not in ("true", "false"):
        raise UsageError(f"access_log={access_log!r}: must be true or false")
    return {
        "ckpt_path": arguments["ckpt_path"],
        "trust_model": arguments.get("trust_model"),
        "host": host,
        "port": _integer(arguments, "port", 8000, 0, 65535),
        "max_body_bytes": _integer(arguments, "max_body_bytes", MAX_BODY_BYTES, 1, 2**40),
        "max_rows": _integer(arguments, "max_rows", MAX_ROWS, 1, 2**40),
        "body_seconds": _integer(arguments, "body_seconds", int(BODY_SECONDS), 1, 3600),
        "threads": _integer(arguments, "threads", 1, 1, 1024),
        "access_log": access_log == "true",
    }


def listening_socket(host: str, port: int) -> Any:
    """A socket bound to ``host:port`` (port 0: a free one), or a :class:`UsageError` saying why not."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UsageError(f"host={host!r} is not an address of this machine ({error.strerror})") from None
    family, kind, protocol, _, address = infos[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({error.strerror})") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(settings: dict[str, Any]) -> None:
    import ipaddress

    import torch
    import uvicorn

    from catbrain.commands.predict import load_predictor
    from catbrain.commands.serving import make_app

    torch.set_num_threads(settings["threads"])
    predictor = load_predictor(settings["ckpt_path"], settings["trust_model"])
    app = make_app(predictor, settings["max_body_bytes"], settings["max_rows"], settings["body_seconds"])
    sock = listening_socket(settings["host"], settings["port"])
    host, port = sock.getsockname()[:2]
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"{PROG}: warning: listening on {host}, not this machine alone: anyone who can reach it can query "
              "the model (no authentication)", file=sys.stderr)  # fmt: skip
    shown = f"[{host}]" if ":" in host else host
    print(f"{PROG}: serving {settings['ckpt_path']} ({predictor.head.kind}: "
          f"{', '.join(predictor.feature_names or [])}) at http://{shown}:{port} "
          "(POST /predict, /invocations; GET /health, /metadata); Ctrl-C stops", flush=True)  # fmt: skip
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=settings["access_log"],
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn finishes the requests in flight, then passes Ctrl-C on
        uvicorn.Server(config).run(sockets=[sock])
    print(f"{PROG}: stopped", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    argv = common.command_line(argv, usage())
    if argv is None:
        return
    with errors_as_one_line(PROG):
        settings = parse_arguments(argv)
        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as error:
            raise UsageError(f"serving needs the serve extra ({error.name} is missing): "
                             "pip install 'catbrain[serve]'") from None  # fmt: skip
        serve(settings)


if __name__ == "__main__":
    main()
