"""Property-based: whatever rows or files are thrown at catbrain-predict, the answer is a prediction or one line."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catbrain.commands.predict import main
from catbrain.commands.train import train
from catbrain.data.table import TableError, read_columns
from tests.conftest import compose_config
from tests.helpers import outcome

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("trained")
    config = compose_config(
        ["data.n_train=256", "data.n_val=64", "data.n_test=64", "trainer.max_epochs=1",
         "callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false"],
        run_dir,
    )  # fmt: skip
    train(config)
    return str(run_dir / "checkpoints/best.ckpt")


def _not_json(word: str):
    raise AssertionError(f"{word} is not JSON: strict parsers (JavaScript, Go, jq) refuse it")


def assert_prediction_or_one_line(code, out, err, n_rows=None):
    if code == 0:
        results = json.loads(out, parse_constant=_not_json)  # strict: NaN and Infinity are not JSON
        assert all(result["prediction"] in ("approach", "ignore", "run_away") for result in results)
        if n_rows is not None:
            assert len(results) == n_rows
    else:
        assert code == 2, err  # bad input, not a crash (a crash exits 1)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("catbrain-predict: error: ")
        assert "Traceback" not in err


cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(max_size=8),
    st.booleans(),
    st.none(),
    st.lists(st.floats(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
rows = st.one_of(st.lists(st.lists(cells, max_size=4), max_size=5), cells, st.lists(cells, max_size=4))


@SETTINGS
@given(data=rows)
def test_any_json_rows(checkpoint, capsys, data):
    text = json.dumps(data)
    code, out, err = outcome(main, capsys, [f"ckpt_path={checkpoint}", f"input={text}", "format=json"])
    assert_prediction_or_one_line(code, out, err)


@SETTINGS
@given(text=st.text(max_size=60))
def test_any_text_as_input(checkpoint, capsys, text):
    code, out, err = outcome(main, capsys, [f"ckpt_path={checkpoint}", f"input={text}", "format=json"])
    assert_prediction_or_one_line(code, out, err)


csv_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
    st.sampled_from(["", " ", "1e999", "-0", "0x10", "1_000", "٣", "nan", "inf", '"1,5"', "１"]),
)
headers = st.lists(st.sampled_from(["hardness", "sharpness", "note", "", "Hardness", "sharpness "]), max_size=4)


@SETTINGS
@given(
    header=headers, body=st.lists(st.lists(csv_cells, max_size=4), max_size=4), ending=st.sampled_from(["\n", "\r\n"])
)
def test_any_csv_file(checkpoint, capsys, tmp_path_factory, header, body, ending):
    path = tmp_path_factory.mktemp("csv") / "rows.csv"
    path.write_text(ending.join(",".join(line) for line in [header, *body]) + ending, encoding="utf-8")
    code, out, err = outcome(main, capsys, [f"ckpt_path={checkpoint}", f"input_path={path}", "format=json"])
    assert_prediction_or_one_line(code, out, err)


@SETTINGS
@given(content=st.binary(max_size=80))
def test_the_csv_reader_takes_any_bytes(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("bytes") / "data.csv"
    path.write_bytes(content)
    try:
        columns = read_columns(path, ["a", "b"])
    except TableError as error:
        assert str(path) in str(error) and "\n" not in str(error).strip()
    else:
        assert len(columns["a"]) == len(columns["b"]) > 0


def test_valid_rows_always_predict(checkpoint, capsys):
    code, out, err = outcome(
        main, capsys, [f"ckpt_path={checkpoint}", "input=[[0, 0], [1, 1], [0.5, 0.25]]", "format=json"]
    )
    assert_prediction_or_one_line(code, out, err, n_rows=3)
    assert code == 0
