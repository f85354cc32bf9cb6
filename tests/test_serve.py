"""catbrain-serve as a client meets it: a real uvicorn server on 127.0.0.1, real HTTP requests (good, bad and
concurrent), then stopped."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import predict_in_process

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]


class Server:
    """``catbrain serve`` in a child process, on a free port of 127.0.0.1."""

    def __init__(self, *arguments: str) -> None:
        environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "catbrain", "serve", "port=0", *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self.banner = self.process.stdout.readline()
        if "http://" not in self.banner:
            self.process.kill()
            raise AssertionError(f"the server did not start: {self.banner!r} {self.process.stderr.read()!r}")
        self.host, port = self.banner.split("http://")[1].split()[0].rsplit(":", 1)
        self.port = int(port)

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict | None = None):
        """``(status, parsed JSON body, content type)`` of one request on a fresh connection."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response.status, json.loads(response.read()), response.getheader("content-type")
        finally:
            connection.close()

    def post(self, path: str, payload: object, **kwargs):
        return self.request("POST", path, json.dumps(payload), **kwargs)

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        return self.process.returncode, err


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    running = Server(f"ckpt_path={tiny_checkpoint}")
    yield running
    code, err = running.stop()
    assert code == 0, err
    assert "Traceback" not in err, err


ROWS = [[0.9, 0.8], [0.1, 0.2], [0.5, 0.55], [1.3, -0.2]]


def expected_answers(checkpoint: str, rows: list[list[float]], capsys) -> list[dict]:
    code, out, err = predict_in_process(checkpoint, [f"input={json.dumps(rows)}", "format=json"], capsys)
    assert code == 0, err
    return json.loads(out)


def test_server_listens_on_this_machine_alone_by_default(server):
    from catbrain.commands.serve import parse_arguments

    assert server.host == "127.0.0.1"
    assert parse_arguments(["ckpt_path=x"])["host"] == "127.0.0.1"


def test_predict_answers_as_catbrain_predict_does(server, tiny_checkpoint, capsys):
    expected = expected_answers(tiny_checkpoint, ROWS, capsys)
    status, answer, content_type = server.post("/predict", {"inputs": ROWS})
    assert status == 200 and content_type == "application/json"
    assert answer == {"predictions": expected}
    assert "outside_training_range" in answer["predictions"][3]  # 1.3 lies beyond the training hardness
    objects = [{"sharpness": s, "hardness": h} for h, s in ROWS]  # keyed by name, in any order
    assert server.post("/predict", {"inputs": objects})[1] == {"predictions": expected}
    assert server.post("/predict", {"inputs": ROWS[0]})[1] == {"predictions": expected[:1]}  # one row


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": ROWS},
        {"instances": ROWS},
        {"inputs": {"hardness": [r[0] for r in ROWS], "sharpness": [r[1] for r in ROWS]}},
        {
            "dataframe_split": {
                "columns": ["id", "sharpness", "hardness"],
                "data": [[i, s, h] for i, (h, s) in enumerate(ROWS)],
            }
        },
        {"dataframe_records": [{"hardness": h, "sharpness": s, "id": "x"} for h, s in ROWS]},
    ],
    ids=["inputs", "instances", "inputs-columns", "dataframe_split", "dataframe_records"],
)
def test_invocations_takes_mlflows_payloads(server, tiny_checkpoint, capsys, payload):
    status, answer, _ = server.post("/invocations", payload)
    assert status == 200, answer
    assert answer == {"predictions": expected_answers(tiny_checkpoint, ROWS, capsys)}


def test_invocations_takes_a_csv_body(server, tiny_checkpoint, capsys):
    table = "id,hardness,sharpness\n" + "".join(f"o{i},{h},{s}\n" for i, (h, s) in enumerate(ROWS))
    for content_type in ("text/csv", "Text/CSV; charset=utf-8"):
        status, answer, _ = server.request("POST", "/invocations", table, {"Content-Type": content_type})
        assert status == 200, answer
        assert answer == {"predictions": expected_answers(tiny_checkpoint, ROWS, capsys)}
    payload = {"inputs": ROWS, "params": {}}  # MLflow's empty inference parameters
    assert server.post("/invocations", payload)[1] == {"predictions": expected_answers(tiny_checkpoint, ROWS, capsys)}


def test_health_and_metadata(server):
    assert server.request("GET", "/health")[:2] == (200, {"status": "ok"})
    status, metadata, _ = server.request("GET", "/metadata")
    assert status == 200
    assert metadata["kind"] == "threshold"
    assert metadata["feature_names"] == ["hardness", "sharpness"]
    assert metadata["class_names"] == ["approach", "ignore", "run_away"]
    assert metadata["thresholds"] == [-0.25, 0.25]
    assert metadata["target_name"] == "score"
    assert set(metadata["versions"]) >= {"catbrain", "torch", "python"}


BAD_REQUESTS = [
    # (method, path, body, headers, status, words the error must contain)
    ("POST", "/predict", "nope", {}, 400, "not valid JSON"),
    ("POST", "/predict", "", {}, 400, "not valid JSON"),
    ("POST", "/predict", "[" * 100_000, {}, 400, "not valid JSON"),
    ("POST", "/predict", '{"rows": [[1, 2]]}', {}, 400, "one key, one of ['inputs']"),
    ("POST", "/predict", '{"inputs": [[1, 2]], "x": 1}', {}, 400, "one key"),
    ("POST", "/predict", '{"dataframe_split": {}}', {}, 400, "['inputs']"),
    ("POST", "/predict", '{"inputs": [[0.5]]}', {}, 400, "row 1 has 1 values; the model takes 2"),
    ("POST", "/predict", '{"inputs": [[0.5, 0.5], [0.5, NaN]]}', {}, 400, "row 2, sharpness: nan is not a finite"),
    ("POST", "/predict", '{"inputs": [[0.5, 1e999]]}', {}, 400, "sharpness: inf is not a finite"),
    ("POST", "/predict", '{"inputs": [[0.5, "x"]]}', {}, 400, "row 1, sharpness: 'x' is not a number"),
    ("POST", "/predict", '{"inputs": [[0.5, true]]}', {}, 400, "row 1, sharpness: True is not a number"),
    ("POST", "/predict", '{"inputs": [{"hardness": 0.5}]}', {}, 400, "lacks ['sharpness']"),
    ("POST", "/predict", '{"inputs": []}', {}, 400, "must be a JSON list of rows"),
    ("POST", "/predict", '{"inputs": ' + "9" * 5000 + "}", {}, 400, "must be a JSON list of rows"),
    (
        "POST",
        "/invocations",
        '{"dataframe_split": {"columns": ["hardness"], "data": [[1]]}}',
        {},
        400,
        "lacks the column sharpness",
    ),
    (
        "POST",
        "/invocations",
        '{"dataframe_split": {"columns": ["a", "b"], "data": [[1]]}}',
        {},
        400,
        "row 1 has 1 values; the columns are 2",
    ),
    ("POST", "/invocations", '{"inputs": {"hardness": [1, 2], "sharpness": [1]}}', {}, 400, "same length"),
    ("POST", "/invocations", "hardness,size\n1,2\n", {"Content-Type": "text/csv"}, 400, "sharpness"),
    (
        "POST",
        "/invocations",
        "hardness,sharpness\n1,x\n",
        {"Content-Type": "text/csv"},
        400,
        "line 2, column sharpness",
    ),
    (
        "POST",
        "/predict",
        '{"inputs": [{"hardness": 0.5, "hardness": 0.1, "sharpness": 1}]}',
        {},
        400,
        "names 'hardness' twice",
    ),
    ("POST", "/predict", '{"inputs": [[0.5, "1_0"]]}', {}, 400, "sharpness: '1_0' is not a number"),
    (
        "POST",
        "/invocations",
        '{"dataframe_split": {"columns": ["hardness", "hardness", "sharpness"], "data": []}}',
        {},
        400,
        "names the column hardness twice",
    ),
    (
        "POST",
        "/invocations",
        '{"dataframe_split": {"columns": ["hardness", "sharpness"], "data": [[1, 2], [1]]}}',
        {},
        400,
        "dataframe_split row 2 has 1 values",
    ),
    (
        "POST",
        "/invocations",
        '{"inputs": [[1, 2]], "params": {"temperature": 1}}',
        {},
        400,
        "takes no inference parameters",
    ),
    ("POST", "/predict/", '{"inputs": [[1, 2]]}', {}, 404, "no endpoint /predict/"),
    ("GET", "/predict", None, {}, 405, "use POST /predict"),
    ("POST", "/health", "{}", {}, 405, "use GET /health"),
    ("GET", "/nowhere", None, {}, 404, "no endpoint /nowhere; the endpoints: POST /predict"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "words"), BAD_REQUESTS)
def test_bad_requests_get_a_json_error_naming_the_problem(server, method, path, body, headers, status, words):
    got, answer, content_type = server.request(method, path, body, headers)
    assert (got, content_type) == (status, "application/json"), answer
    assert set(answer) == {"error"} and words in answer["error"], answer["error"]
    assert "Traceback" not in answer["error"]


def test_a_body_over_the_limit_is_413_announced_or_streamed(tiny_checkpoint):
    small = Server(f"ckpt_path={tiny_checkpoint}", "max_body_bytes=1000", "max_rows=3")
    try:
        body = json.dumps({"inputs": [[0.5, 0.5]] * 200})  # 2,412 bytes
        status, answer, _ = small.request("POST", "/predict", body)
        assert status == 413 and "over the limit of 1000 bytes" in answer["error"]
        # without a Content-Length, the body is counted as it arrives
        connection = http.client.HTTPConnection(small.host, small.port, timeout=30)
        connection.request("POST", "/predict", body=iter([body[:900].encode(), body[900:].encode()]),
                           encode_chunked=True)  # fmt: skip
        response = connection.getresponse()
        assert response.status == 413 and "over the limit" in json.loads(response.read())["error"]
        connection.close()
        assert small.post("/predict", {"inputs": [[0.5, 0.5]]})[0] == 200  # within the limit
        # a body within the bytes limit may still ask about too many rows: refused before any is read
        for path, payload in [("/predict", {"inputs": [[0.5, 0.5]] * 4}),
                              ("/invocations", {"dataframe_split": {"columns": ["hardness", "sharpness"],
                                                                    "data": [[1, 2]] * 4}}),
                              ("/invocations", {"inputs": {"hardness": [1] * 4, "sharpness": [1] * 4}}),
            ("/invocations", {"inputs": {"id": [], "hardness": [1] * 4, "sharpness": [1] * 4}})]:  # fmt: skip
            status, answer, _ = small.post(path, payload)
            assert status == 400 and "the request has 4 rows; this server answers at most 3" in answer["error"]
        status, answer, _ = small.request("POST", "/invocations", "hardness,sharpness\n" + "1,2\n" * 4,
                                          {"Content-Type": "text/csv"})  # fmt: skip
        assert status == 400 and "over 3 rows" in answer["error"]
    finally:
        code, err = small.stop()
    assert code == 0 and "Traceback" not in err, err


def test_a_stalled_body_is_408_and_ctrl_c_stops_without_a_traceback(tiny_checkpoint):
    import socket

    slow = Server(f"ckpt_path={tiny_checkpoint}", "body_seconds=1")
    try:
        with socket.create_connection((slow.host, slow.port), timeout=30) as stalled:
            stalled.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
            answer = b""
            while chunk := stalled.recv(4096):
                answer += chunk
            answer = answer.decode()
        assert answer.startswith("HTTP/1.1 408") and "did not arrive within 1 s" in answer
        hanging = socket.create_connection((slow.host, slow.port), timeout=30)  # still sending when Ctrl-C comes
        hanging.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
    finally:
        code, err = slow.stop()
    hanging.close()
    assert code == 0 and "Traceback" not in err and "ERROR" not in err, err


def test_concurrent_clients_each_get_their_own_answers(server, tiny_checkpoint):
    from catbrain.commands.predict import load_predictor

    predictor = load_predictor(tiny_checkpoint)
    failures: list[str] = []

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
        for request in range(20):  # kept-alive connection, as a real client does
            rows = [[(number * 7 + request) % 10 / 10, (request * 3 + r) % 10 / 10] for r in range(1 + request % 5)]
            connection.request("POST", "/predict", body=json.dumps({"inputs": rows}))
            response = connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 200 or answer["predictions"] != json.loads(json.dumps(predictor.predict(rows))):
                failures.append(f"client {number} request {request}: {response.status} {answer}")
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:3]


def test_a_large_request_is_answered_whole(server, tiny_checkpoint, capsys):
    rows = [[(i % 97) / 97, (i % 89) / 89] for i in range(3000)]  # a body over 16 KiB: answered off the event loop
    status, answer, _ = server.post("/predict", {"inputs": rows})
    assert status == 200 and len(answer["predictions"]) == 3000
    assert answer["predictions"][::500] == expected_answers(tiny_checkpoint, rows[::500], capsys)


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["port=http"], "port='http': must be an integer from 0 to 65535"),
        (["port=70000"], "must be an integer from 0 to 65535"),
        (["max_body_bytes=0"], "max_body_bytes='0'"),
        (["max_rows=1.5"], "max_rows='1.5': must be an integer"),
        (["threads=-1"], "threads='-1'"),
        (["access_log=yes"], "access_log='yes': must be true or false"),
        (["host=no such host"], "host='no such host'"),
        (["hots=1"], "unknown argument 'hots=1'"),
        (["port=8000", "port=9000"], "port is given twice"),
        ([], "ckpt_path=... is required"),
    ],
)
def test_bad_command_lines_are_one_line_before_any_work(arguments, words, capsys, tiny_checkpoint):
    from catbrain.commands.serve import main

    path = [] if arguments == [] else [f"ckpt_path={tiny_checkpoint}"]
    with pytest.raises(SystemExit) as exited:
        main([*path, *arguments])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and len(err.strip().splitlines()) == 1 and words in err, err


def test_a_port_in_use_and_a_missing_checkpoint_are_one_line(server, tiny_checkpoint, tmp_path, capsys):
    from catbrain.commands.serve import main

    for arguments, words in [
        ([f"ckpt_path={tiny_checkpoint}", f"port={server.port}"], f"cannot listen on 127.0.0.1:{server.port}"),
        ([f"ckpt_path={tmp_path / 'none.ckpt'}"], "none.ckpt"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(arguments)
        err = capsys.readouterr().err
        assert exited.value.code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
