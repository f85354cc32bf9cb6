"""catbrain-predict over a file of any length: streamed chunk by chunk, the input's columns passed through,
``output_path`` written whole or not at all."""

from __future__ import annotations

import csv
import io
import json

import pytest

from catbrain.commands import streaming
from catbrain.commands.predict import main
from tests.conftest import predict_in_process


@pytest.fixture
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def objects(n: int) -> str:
    rows = [f"obj{i},{(i * 37 % 100) / 100},{(i * 61 % 100) / 100},note {i}" for i in range(n)]
    return "id,hardness,sharpness,comment\n" + "\n".join(rows) + "\n"


def test_csv_out_keeps_every_input_column_beside_its_answer(checkpoint, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 7)  # several chunks
    (tmp_path / "in.csv").write_text(objects(30))
    code, out, err = predict_in_process(checkpoint, [f"input_path={tmp_path / 'in.csv'}", "format=json"], capsys)
    assert code == 0, err
    expected = json.loads(out)
    code, out, err = predict_in_process(
        checkpoint, [f"input_path={tmp_path / 'in.csv'}", f"output_path={tmp_path / 'out.csv'}"], capsys
    )
    assert code == 0 and out == "", err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert [row["id"] for row in rows] == [f"obj{i}" for i in range(30)]
    assert [row["comment"] for row in rows][-1] == "note 29"
    assert [row["prediction"] for row in rows] == [answer["prediction"] for answer in expected]
    assert float(rows[3]["score"]) == pytest.approx(expected[3]["score"])
    margin = next(key for key in rows[0] if key.startswith("margins/") and key.endswith("/distance"))
    assert "outside_training_range" in rows[0] and margin


def test_the_first_answers_are_written_before_the_last_row_is_read(checkpoint, capsys, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 10)
    lines = objects(100).splitlines(keepends=True)
    progress = {"read": 0, "read_at_first_write": None}

    class Input:
        def __iter__(self):
            for line in lines:
                progress["read"] += 1
                yield line

    class Output(io.StringIO):
        def write(self, text):
            if progress["read_at_first_write"] is None and text:
                progress["read_at_first_write"] = progress["read"]
            return super().write(text)

    output = Output()
    monkeypatch.setattr("sys.stdin", Input())
    monkeypatch.setattr("sys.stdout", output)
    main([f"ckpt_path={checkpoint}", "input_path=-"])
    assert len(output.getvalue().splitlines()) == 100
    assert progress["read_at_first_write"] <= 12  # header, ten rows, and the one that ended the chunk


def test_a_bad_row_late_in_the_file_leaves_no_output_file_and_names_its_line(checkpoint, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 5)
    (tmp_path / "in.csv").write_text(objects(40) + "obj40,0.5,lots,bad\n")
    (tmp_path / "out.csv").write_text("the previous answers\n")
    code, out, err = predict_in_process(
        checkpoint,
        [f"input_path={tmp_path / 'in.csv'}", f"output_path={tmp_path / 'out.csv'}", "overwrite=true"],
        capsys,
    )
    assert code == 2
    assert err.strip().splitlines() == [f"catbrain-predict: error: {tmp_path / 'in.csv'} line 42, column sharpness: "
                                        "'lots' is not a number"]  # fmt: skip
    assert (tmp_path / "out.csv").read_text() == "the previous answers\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_an_answer_that_is_not_finite_is_named_by_its_row_across_chunks(checkpoint, capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "CHUNK_ROWS", 4)
    text = objects(10) + "big,3e38,3e38,x\n"
    (tmp_path / "in.csv").write_text(text)
    code, out, err = predict_in_process(checkpoint, [f"input_path={tmp_path / 'in.csv'}", "format=json"], capsys)
    if code == 0:  # this model's answer for it is finite: a number, in strict JSON
        json.loads(out, parse_constant=lambda word: pytest.fail(f"{word} is not JSON"))
    else:
        assert code == 2 and "row 11: the model's answer is not a finite number" in err


def test_json_rows_can_come_out_as_csv(checkpoint, capsys):
    code, out, err = predict_in_process(checkpoint, ["input=[[0.9, 0.8], [0.1, 0.2]]", "format=json"], capsys)
    expected = [answer["prediction"] for answer in json.loads(out)]
    code, out, err = predict_in_process(checkpoint, ["input=[[0.9, 0.8], [0.1, 0.2]]", "format=csv"], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["prediction"] for row in rows] == expected
    assert rows[0]["hardness"] == "0.9"


def test_an_input_column_named_like_an_answer_column_is_refused(checkpoint, capsys, tmp_path):
    (tmp_path / "in.csv").write_text("hardness,sharpness,prediction\n0.5,0.5,x\n")
    code, out, err = predict_in_process(checkpoint, [f"input_path={tmp_path / 'in.csv'}", "format=csv"], capsys)
    assert code == 2 and "the input's column 'prediction' is also an answer column" in err
