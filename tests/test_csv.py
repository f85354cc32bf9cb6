"""Your own data: the CSV reader refuses malformed files by name, and the CSV DataModule splits them."""

import pytest
import torch

from catbrain.commands.train import train
from catbrain.data import CsvDataModule
from catbrain.data.table import TableError, read_columns
from catbrain.validation import ConfigError
from catbrain.worlds import CatWorld, WeatherWorld
from tests.conftest import compose_config


def write_world(path, world, n, seed, targets):
    sample = world.sample(n, torch.Generator().manual_seed(seed))
    names = list(world.feature_names)
    lines = [",".join(names + targets)]
    for i in range(n):
        values = [f"{v:.6f}" for v in sample["features"][i].tolist()]
        values += [str(world.class_names[int(sample[t][i])]) if t == "decision" else f"{float(sample[t][i]):.6f}"
                   for t in targets]  # fmt: skip
        lines.append(",".join(values))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("a,c\n1,2\n", "has no column b; its header is a, c"),
        ("a,b\n", "has a header but no rows"),
        ("a,b\n1,2\n3,x\n", "line 3, column b: 'x' is not a number"),
        ("a,b\n1,nan\n", "line 2, column b: 'nan' is not a finite number"),
        ("a,b\n1,2,3\n", "line 2 has 3 fields; the header has 2"),
        ("a,b\n1,inf\n", "is not a finite number"),
    ],
)
def test_malformed_files_are_refused_by_place(tmp_path, text, message):
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(TableError, match=message.replace("(", r"\(")) as error:
        read_columns(path, ["a", "b"])
    assert str(path) in str(error.value)


def test_columns_are_read_by_name_in_any_order(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("note,b,a\nfirst,2,1\nsecond,4.5,-3e2\n\n")
    assert read_columns(path, ["a", "b"], ["note"]) == {
        "a": [1.0, -300.0],
        "b": [2.0, 4.5],
        "note": ["first", "second"],
    }


def test_one_file_splits_by_fraction_and_seed(tmp_path):
    path = write_world(tmp_path / "cat.csv", CatWorld(), 1000, 0, ["score"])
    data = CsvDataModule(["hardness", "sharpness"], "score", path=str(path), val_fraction=0.1, test_fraction=0.2)
    assert {k: len(v["target"]) for k, v in data.splits.items()} == {"train": 700, "val": 100, "test": 200}
    again = CsvDataModule(["hardness", "sharpness"], "score", path=str(path), val_fraction=0.1, test_fraction=0.2)
    assert torch.equal(data.splits["train"]["features"], again.splits["train"]["features"])


def test_no_validation_fraction_validates_on_the_training_data(tmp_path):
    path = write_world(tmp_path / "cat.csv", CatWorld(), 100, 0, ["score"])
    data = CsvDataModule(["hardness", "sharpness"], "score", train_path=str(path), val_fraction=0)
    assert data.splits["val"] is data.splits["train"]
    # Without a test file the test split comes from the training file too.
    assert len(data.splits["test"]["target"]) == 20 and len(data.splits["train"]["target"]) == 80


def test_too_few_rows_for_a_test_split_is_refused_before_training(tmp_path):
    path = write_world(tmp_path / "tiny.csv", CatWorld(), 2, 0, ["score"])
    with pytest.raises(ValueError, match="no test data: 2 rows with data.test_fraction=0.2 leave none"):
        CsvDataModule(["hardness", "sharpness"], "score", path=str(path), val_fraction=0)


def test_class_names_come_from_the_column_or_the_config(tmp_path):
    path = write_world(tmp_path / "cat.csv", CatWorld(), 500, 0, ["decision"])
    found = CsvDataModule(["hardness", "sharpness"], "decision", task="classification", path=str(path))
    assert found.class_names == ["approach", "ignore", "run_away"]
    assert found.splits["train"]["target"].dtype == torch.long
    with pytest.raises(ValueError, match=r"labels \['run_away'\] outside \['approach', 'ignore'\]"):
        CsvDataModule(["hardness", "sharpness"], "decision", task="classification", path=str(path),
                      class_names=["approach", "ignore"])  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"task": "ranking"}, "data.task='ranking' is not one of"),
        ({"val_fraction": 1.0}, r"data.val_fraction must be in \[0, 1\)"),
        ({"path": None}, "must name a CSV file"),
        ({"target": "hardness"}, "also one of data.features"),
    ],
)
def test_bad_csv_settings_are_named(tmp_path, arguments, message):
    path = write_world(tmp_path / "cat.csv", CatWorld(), 50, 0, ["score"])
    settings = {"features": ["hardness", "sharpness"], "target": "score", "path": str(path), **arguments}
    with pytest.raises(ValueError, match=message):
        CsvDataModule(**settings)


def test_training_on_csv_learns_the_weather_and_standardises_from_training_rows(tmp_path, quiet_run):
    path = write_world(tmp_path / "weather.csv", WeatherWorld(), 6000, 0, ["temp_tomorrow"])
    features = ",".join(WeatherWorld.feature_names)
    config = compose_config(
        ["experiment=weather_3pm", "data=csv", f"data.path={path}", f"data.features=[{features}]",
         "data.target=temp_tomorrow", "trainer.max_epochs=10", *quiet_run],
        tmp_path,
    )  # fmt: skip
    metrics = train(config)
    assert metrics["test/mse"] < 4.0 * 1.15  # the world's noise variance is 4
    assert metrics["weight/temp_today"] == pytest.approx(0.7, abs=0.1)


def test_classification_on_csv_takes_class_names_from_the_data(tmp_path, quiet_run):
    path = write_world(tmp_path / "cat.csv", CatWorld(), 3000, 0, ["decision"])
    config = compose_config(
        ["experiment=cat_softmax", "data=csv", f"data.path={path}", "data.features=[hardness,sharpness]",
         "data.target=decision", "data.task=classification", "trainer.max_epochs=10", *quiet_run],
        tmp_path,
    )  # fmt: skip
    metrics = train(config)
    assert metrics["test/acc"] > 0.8
    assert "test/confusion/run_away/approach" in metrics


def test_a_world_written_to_csv_trains_like_its_own_data(tmp_path, quiet_run, capsys):
    from catbrain.commands.data import main as write_data
    from catbrain.data.table import read_columns

    out = tmp_path / "cat_csv"
    write_data([f"out={out}", "data.n_train=2000", "data.n_val=200", "data.n_test=500"])
    assert "train: 2000 rows" in capsys.readouterr().out
    header = (out / "train.csv").read_text().splitlines()[0]
    assert header == "hardness,sharpness,score,decision"
    test_rows = read_columns(out / "test.csv", ["hardness", "sharpness", "score"], ["decision"])
    assert len(test_rows["score"]) == 500 and set(test_rows["decision"]) == {"approach", "ignore", "run_away"}

    config = compose_config(
        ["experiment=cat_softmax", "data=csv", f"data.train_path={out / 'train.csv'}",
         f"data.test_path={out / 'test.csv'}", "data.features=[hardness,sharpness]", "data.target=decision",
         "data.task=classification", *quiet_run],
        tmp_path / "run",
    )  # fmt: skip
    metrics = train(config)
    assert metrics["test/acc"] > 0.85


def test_only_worlds_can_be_written(tmp_path, capsys):
    from catbrain.commands.data import main as write_data

    with pytest.raises(SystemExit) as exit_:
        write_data([f"out={tmp_path}", "data=csv"])
    assert exit_.value.code == 2 and "is not a synthetic world" in capsys.readouterr().err


def test_the_thresholded_cat_brain_trains_on_csv_once_its_thresholds_are_given(tmp_path, quiet_run):
    path = write_world(tmp_path / "cat.csv", CatWorld(), 3000, 0, ["score"])
    data = ["data=csv", f"data.path={path}", "data.features=[hardness,sharpness]", "data.target=score"]
    with pytest.raises(ConfigError, match=r"model.thresholds=\[-0.25,0.25\] model.class_names=\[approach"):
        train(compose_config([*data, *quiet_run], tmp_path / "refused"))
    given = ["model.thresholds=[-0.25,0.25]", "model.class_names=[approach,ignore,run_away]", "trainer.max_epochs=5"]
    metrics = train(compose_config([*data, *given, *quiet_run], tmp_path / "run"))
    assert metrics["weight/hardness"] == pytest.approx(1.0, abs=0.05)
    assert metrics["bias"] == pytest.approx(-1.0, abs=0.05)
    assert metrics["threshold/ignore-run_away"] == 0.25 and "test/decision_acc" in metrics
