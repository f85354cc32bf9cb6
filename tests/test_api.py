"""catbrain from Python: train returns a Run, load returns the predictor, two trainings share nothing."""

from __future__ import annotations

import json

import pytest

import catbrain
from catbrain.errors import ConfigError
from tests.conftest import predict_in_process

TINY = ["data.n_train=128", "data.n_val=32", "data.n_test=32", "trainer.max_epochs=2", "plots=false", "logger=none",
        "callbacks=model_checkpoint", "trainer.enable_progress_bar=false"]  # fmt: skip


def test_two_trainings_in_one_process_each_get_their_own_config(tmp_path):
    first = catbrain.train("optimizer.lr=0.05", *TINY, run_dir=tmp_path / "first")
    second = catbrain.train("experiment=weather_3pm", *TINY, run_dir=tmp_path / "second")
    assert first.metrics == json.loads((tmp_path / "first" / "metrics.json").read_text())
    assert first.checkpoint.is_file() and first.last_checkpoint.is_file()
    assert first.config["optimizer"]["lr"] == 0.05 and first.config["name"] == "cat_threat"
    assert second.config["optimizer"]["lr"] == 0.02 and second.config["name"] == "weather_3pm"  # nothing leaked
    assert "test/mse" in second.metrics and second.run_dir == (tmp_path / "second").resolve()


def test_a_bad_value_raises_the_commands_message_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="trainer.max_steps=0: must be -1"):
        catbrain.train("trainer.max_steps=0", run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_trainings_in_the_same_second_get_their_own_default_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [catbrain.train(*TINY, "trainer.max_epochs=1") for _ in range(2)]
    assert runs[0].run_dir != runs[1].run_dir
    assert (tmp_path / "outputs" / "train" / "latest").resolve() == runs[1].run_dir


@pytest.fixture(scope="module")
def brain(tmp_path_factory):
    run = catbrain.train(*TINY, run_dir=tmp_path_factory.mktemp("api") / "run")
    return run.checkpoint


def test_load_predicts_what_the_command_prints(brain, capsys):
    rows = [[0.9, 0.8], [0.1, 0.2], [0.5, 0.55]]
    code, out, err = predict_in_process(str(brain), [f"input={json.dumps(rows)}", "format=json"], capsys)
    assert code == 0, err
    predictor = catbrain.load(brain)
    assert predictor.predict(rows) == json.loads(out)
    assert predictor.feature_names == ["hardness", "sharpness"]
    assert predictor.metadata()["feature_names"] == ["hardness", "sharpness"]
    numpy = pytest.importorskip("numpy")
    assert predictor.predict(numpy.array(rows)) == json.loads(out)


def test_a_dataframe_in_gives_a_dataframe_out(brain):
    pandas = pytest.importorskip("pandas", reason="the dev extra brings pandas")
    predictor = catbrain.load(brain)
    frame = pandas.DataFrame({"id": ["a", "b"], "sharpness": [0.8, 0.2], "hardness": [0.9, 0.1]}, index=[7, 9])
    answers = predictor.predict(frame)
    expected = predictor.predict([[0.9, 0.8], [0.1, 0.2]])
    assert list(answers.index) == [7, 9]
    assert list(answers["prediction"]) == [answer["prediction"] for answer in expected]
    assert answers["score"].tolist() == pytest.approx([answer["score"] for answer in expected])
    with pytest.raises(ValueError, match="the DataFrame has no column sharpness"):
        predictor.predict(frame.drop(columns=["sharpness"]))


def test_the_package_says_it_is_typed():
    from pathlib import Path

    assert (Path(catbrain.__file__).parent / "py.typed").is_file()


def test_bad_rows_raise_the_commands_messages_from_python(brain):
    from catbrain.errors import UsageError

    predictor = catbrain.load(brain)
    cases = [
        ([[0.9]], "rows of shape (1, 1): the model takes (n >= 1, 2) rows of hardness, sharpness"),
        ([], "rows of shape (0,)"),
        ([["x", 1]], "rows must be numbers, 2 a row (hardness, sharpness)"),
        ([[0.5, 0.5], [float("nan"), 1]], "input row 2, hardness: nan is not a finite number"),
    ]
    for rows, message in cases:
        with pytest.raises(UsageError) as raised:
            predictor.predict(rows)
        assert message in str(raised.value), rows


def test_a_run_dir_that_holds_a_run_is_not_replaced_unless_asked(brain):
    from catbrain.errors import UsageError

    run_dir = brain.parent.parent
    with pytest.raises(UsageError, match="holds a run already; give another, or overwrite=True"):
        catbrain.train(*TINY, run_dir=run_dir)
