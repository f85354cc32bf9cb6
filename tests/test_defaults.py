"""The defaults land on the answer: SGD at its default learning rate on every target scale, threads sized to the
model. (Timings are benchmarks, in scripts/bench.py, never thresholds here.)"""

from __future__ import annotations

import csv

import pytest
import torch

from catbrain.commands.data import main as write_data
from catbrain.commands.train import train
from catbrain.run.trainer import thread_count, threads
from tests.conftest import compose_config

QUIET = ["callbacks=[model_checkpoint,early_stopping]", "logger=none", "trainer.enable_progress_bar=false"]
QUIET += ["plots=false"]


@pytest.mark.parametrize("experiment", ["weather_3pm", "cat_threat"])
def test_sgd_at_its_default_learning_rate_reaches_the_bayes_optimal_error(experiment, tmp_path):
    """The loss is computed in standardised target units, so one learning rate suits a temperature and a score."""
    metrics = train(compose_config([f"experiment={experiment}", "optimizer=sgd", *QUIET], tmp_path))
    assert metrics["test/mse"] <= 1.02 * metrics["test/bayes_mse"]


def test_sgd_at_its_default_learning_rate_fits_a_target_in_other_units_like_least_squares(tmp_path):
    sklearn = pytest.importorskip("sklearn.linear_model", reason="the bench extra brings scikit-learn")
    write_data(["experiment=weather_3pm", "data.n_train=8000", "data.n_val=10", "data.n_test=4000", f"out={tmp_path}"])
    features = ["temp_today", "pressure", "humidity", "day_sin", "day_cos"]
    tables = {}
    for split in ("train", "test"):  # the temperature in millikelvin above 0 C: a target 1000 times larger
        with open(tmp_path / f"{split}.csv") as file:
            rows = list(csv.DictReader(file))
        for row in rows:
            row["temp_tomorrow"] = str(1000 * float(row["temp_tomorrow"]))
        with open(tmp_path / f"{split}_mk.csv", "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        tables[split] = (
            torch.tensor([[float(row[name]) for name in features] for row in rows], dtype=torch.float64),
            torch.tensor([float(row["temp_tomorrow"]) for row in rows], dtype=torch.float64),
        )
    overrides = [
        "experiment=weather_3pm",
        "data=csv",
        f"data.train_path={tmp_path / 'train_mk.csv'}",
        f"data.test_path={tmp_path / 'test_mk.csv'}",
        f"data.features=[{','.join(features)}]",
        "data.target=temp_tomorrow",
        "data.batch_size=256",
        "optimizer=sgd",
        *QUIET,
    ]
    metrics = train(compose_config(overrides, tmp_path / "run"))
    (train_x, train_y), (test_x, test_y) = tables["train"], tables["test"]
    fitted = sklearn.LinearRegression().fit(train_x.numpy(), train_y.numpy())
    least_squares_mse = float(((torch.from_numpy(fitted.predict(test_x.numpy())) - test_y) ** 2).mean())
    assert metrics["test/mse"] <= 1.02 * least_squares_mse


def test_small_models_train_on_one_thread_and_the_process_gets_its_own_back():
    before = torch.get_num_threads()
    small, large = torch.nn.Linear(5, 1), torch.nn.Linear(1000, 1000)
    assert thread_count("auto", small) == 1
    assert thread_count("auto", large) == before
    assert thread_count(3, small) == 3
    with threads("auto", small) as used:
        assert used == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_bad_thread_count_is_named_before_any_work(tmp_path):
    from catbrain.errors import ConfigError
    from catbrain.validation import validate

    for value in (0, -2, "many"):
        with pytest.raises(ConfigError, match=f"threads={value!r}: must be auto or a positive integer"):
            validate(compose_config([f"threads={value}"], tmp_path))


def _least_squares(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    design = torch.cat([features.double(), torch.ones(len(features), 1, dtype=torch.float64)], dim=1)
    return torch.linalg.lstsq(design, target.double().unsqueeze(1), driver="gelsd").solution.squeeze(1)


def test_closed_form_lands_on_least_squares_for_the_books_fifteen_objects(tmp_path):
    """The book's table: 15 objects, threat = hardness + sharpness - 1 (plus a little noise here)."""
    generator = torch.Generator().manual_seed(0)
    objects = torch.rand(15, 2, generator=generator)
    threat = objects.sum(1) - 1 + 0.05 * torch.randn(15, generator=generator)
    path = tmp_path / "objects.csv"
    path.write_text(
        "hardness,sharpness,threat\n"
        + "".join(f"{h!r},{s!r},{t!r}\n" for (h, s), t in zip(objects.tolist(), threat.tolist()))
    )
    overrides = [
        "experiment=weather_3pm", "data=csv", f"data.train_path={path}", f"data.test_path={path}",
        "data.features=[hardness,sharpness]", "data.target=threat", "data.val_fraction=0", "optimizer=closed_form",
        *QUIET,
    ]  # fmt: skip
    metrics = train(compose_config(overrides, tmp_path / "run"))
    expected = _least_squares(objects, threat)
    learned = [metrics["weight/hardness"], metrics["weight/sharpness"], metrics["bias"]]
    assert learned == pytest.approx(expected.tolist(), abs=1e-6)
    assert metrics["epochs"] == 1  # solved, then one epoch measured it


@pytest.mark.parametrize("experiment", ["weather_3pm", "cat_threat"])
def test_closed_form_is_the_reported_least_squares_answer_on_the_worlds(experiment, tmp_path):
    metrics = train(compose_config([f"experiment={experiment}", "optimizer=closed_form", *QUIET], tmp_path))
    for key in [k for k in metrics if k.startswith("closed_form_weight/")] + ["closed_form_bias"]:
        learned = metrics[key.replace("closed_form_weight/", "weight/").replace("closed_form_bias", "bias")]
        assert learned == pytest.approx(metrics[key], rel=1e-5, abs=1e-6), key
    assert metrics["test/mse"] <= 1.01 * metrics["test/bayes_mse"]


def test_closed_form_refuses_what_it_cannot_solve_before_any_work(tmp_path):
    from catbrain.models import MLP
    from catbrain.tasks import RegressionTask
    from catbrain.tasks.closed_form import ClosedForm

    with pytest.raises(ValueError, match="optimizer=closed_form needs a linear model with one output"):
        RegressionTask(MLP(2), ClosedForm)


@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_a_classifier_on_your_own_file_takes_its_size_from_the_classes_found(model, tmp_path):
    """No model.out_features to type: the model has one output per class the file holds, and the summary
    is titled by the file."""
    write_data(["experiment=cat_softmax", "data.n_train=600", "data.n_val=10", "data.n_test=300", f"out={tmp_path}"])
    overrides = [
        "data=csv", f"data.train_path={tmp_path / 'train.csv'}", f"data.test_path={tmp_path / 'test.csv'}",
        "data.features=[hardness,sharpness]", "data.target=decision", "data.task=classification",
        "task=classification", f"model={model}", "trainer.max_epochs=3", *QUIET,
    ]  # fmt: skip
    metrics = train(compose_config(overrides, tmp_path / "run"))
    assert metrics["test/acc"] > 0.6  # three classes: chance is about 0.33
    assert (
        (tmp_path / "run" / "report.md").read_text().startswith("# catbrain-train: train.csv (experiment cat_threat)\n")
    )


@pytest.mark.parametrize(
    "overrides, task, model",
    [
        (["data.task=classification", "model=linear"], "ClassificationTask", "Linear"),
        (["data.task=classification", "model=mlp"], "ClassificationTask", "MLP"),
        (["data.task=classification"], "ClassificationTask", "Linear"),  # a ThresholdedLinear cannot classify
        (["model=linear"], "RegressionTask", "Linear"),  # the threshold task needs a ThresholdedLinear
        (["model=mlp"], "RegressionTask", "MLP"),
        ([], "ThresholdTask", "ThresholdedLinear"),  # a score, thresholded: the README's own-data threshold recipe
        (["data.task=classification", "task=ordinal"], "OrdinalTask", "ThresholdedLinear"),  # named: kept
        (["experiment=weather_3pm", "data.task=classification"], "ClassificationTask", "Linear"),
        (["experiment=cat_softmax"], "ClassificationTask", "Linear"),  # no data.task: the data follows the task
        (["experiment=cat_ordinal", "model=mlp"], "ClassificationTask", "MLP"),
    ],
)
def test_the_task_follows_the_data_unless_one_is_named(overrides, task, model, tmp_path):
    cfg = compose_config(["data=csv", "data.features=[a,b]", "data.target=y", *overrides], tmp_path)
    assert cfg.task._target_.rsplit(".", 1)[1] == task
    assert cfg.model._target_.rsplit(".", 1)[1] == model


def test_a_world_keeps_its_experiments_task(tmp_path):
    for experiment, task in [("cat_threat", "ThresholdTask"), ("cat_softmax", "ClassificationTask")]:
        cfg = compose_config([f"experiment={experiment}"], tmp_path)
        assert cfg.task._target_.endswith(task)


def test_train_on_a_labelled_file_with_model_linear_and_no_further_key(tmp_path):
    """The issue's own words: ``data=csv data.task=classification model=linear`` trains a classifier, from the
    command line (the launcher's check and the run compose the same config), and stores the task it chose."""
    import json

    from tests.conftest import run_cli

    write_data(["experiment=cat_softmax", "data.n_train=300", "data.n_val=10", "data.n_test=100", f"out={tmp_path}"])
    result = run_cli(
        "catbrain-train", "data=csv", f"data.train_path={tmp_path / 'train.csv'}",
        f"data.test_path={tmp_path / 'test.csv'}", "data.features=[hardness,sharpness]", "data.target=decision",
        "data.task=classification", "model=linear", "trainer.max_epochs=2", "plots=false", "hydra.run.dir=run",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test/acc" in metrics
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)
    assert "task=classification" in checkpoint["catbrain"]["overrides"]
