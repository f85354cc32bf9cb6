"""The shipped experiments reach what their worlds allow, trained in-process on fixed seeds."""

import json
from pathlib import Path

import pytest

from catbrain.commands.train import train
from tests.conftest import compose_config


def run(experiment: str, tmp_path, quiet_run, *overrides: str) -> dict[str, float]:
    config = compose_config([f"experiment={experiment}", *quiet_run, *overrides], tmp_path)
    metrics = train(config)
    assert json.loads((Path(tmp_path) / "metrics.json").read_text()) == pytest.approx(metrics)
    return metrics


def test_weather_regressor_reaches_the_bayes_optimal_mse(tmp_path, quiet_run):
    metrics = run("weather_3pm", tmp_path, quiet_run)
    assert metrics["test/mse"] <= 1.05 * metrics["test/bayes_mse"]
    # The learned rule is the world's teacher (in degrees C per unit of each raw feature).
    assert metrics["weight/temp_today"] == pytest.approx(metrics["teacher_weight/temp_today"], abs=0.05)
    assert metrics["weight/pressure"] == pytest.approx(metrics["teacher_weight/pressure"], abs=0.01)


def test_softmax_classifier_nears_the_bayes_accuracy(tmp_path, quiet_run):
    metrics = run("cat_softmax", tmp_path, quiet_run)
    assert metrics["test/acc"] >= metrics["test/bayes_acc"] - 0.02
    confusion = [
        metrics[f"test/confusion/{t}/{p}"]
        for t in ("approach", "ignore", "run_away")
        for p in ("approach", "ignore", "run_away")
    ]  # noqa: E501
    assert sum(confusion) == 4000
    # A soft cat never runs from what it should approach, nor the other way round.
    assert metrics["test/confusion/approach/run_away"] == metrics["test/confusion/run_away/approach"] == 0


def test_threat_score_with_sgd_and_a_scheduler(tmp_path, quiet_run):
    metrics = run("cat_threat", tmp_path, quiet_run, "optimizer=sgd", "optimizer.lr=0.05", "scheduler=cosine")
    assert metrics["weight/hardness"] == pytest.approx(1.0, abs=0.05)
    assert metrics["bias"] == pytest.approx(-1.0, abs=0.05)


def test_mlp_regressor_trains_on_the_weather(tmp_path, quiet_run):
    metrics = run("weather_3pm", tmp_path, quiet_run, "model=mlp", "trainer.max_epochs=5")
    assert metrics["test/mse"] <= 1.15 * metrics["test/bayes_mse"]
    assert "weight/temp_today" not in metrics  # no linear rule to report for an MLP


@pytest.mark.parametrize("debug", ["fast_dev_run", "overfit", "profiler"])
def test_debug_configs_run(tmp_path, quiet_run, debug):
    overrides = [f"debug={debug}", "data.n_train=256", "data.n_val=64", "data.n_test=64"]
    if debug == "overfit":
        overrides.append("trainer.max_epochs=3")
    config = compose_config(["experiment=cat_threat", *quiet_run, *overrides], tmp_path)
    metrics = train(config)
    assert "test/mse" in metrics


def test_gradient_descent_lands_on_the_closed_form_solution(tmp_path, quiet_run):
    cat = run("cat_threat", tmp_path / "cat", quiet_run)
    # Adam at lr 0.05 with early stopping: within 0.02 of the least-squares weights on the same data.
    for key in ("weight/hardness", "weight/sharpness", "bias"):
        closed = cat["closed_form_bias"] if key == "bias" else cat[key.replace("weight/", "closed_form_weight/")]
        assert cat[key] == pytest.approx(closed, abs=0.02), key

    weather = run("weather_3pm", tmp_path / "weather", quiet_run)
    features = ["temp_today", "pressure", "humidity", "day_sin", "day_cos"]
    for name in features:
        assert weather[f"weight/{name}"] == pytest.approx(weather[f"closed_form_weight/{name}"], abs=0.05), name
    # Raw-unit biases differ with the pressure weight times ~1013 hPa; the predictions agree.
    typical_day = dict(zip(features, [12.0, 1013.0, 60.0, 0.0, 1.0]))

    def predict(prefix, bias):
        return weather[bias] + sum(weather[f"{prefix}{name}"] * value for name, value in typical_day.items())

    assert predict("weight/", "bias") == pytest.approx(predict("closed_form_weight/", "closed_form_bias"), abs=0.1)


def test_weather_quantiles_reach_the_bayes_pinball_loss_and_cover_as_promised(tmp_path, quiet_run):
    metrics = run("weather_3pm_quantiles", tmp_path, quiet_run)
    assert metrics["test/pinball_loss"] <= 1.02 * metrics["test/bayes_pinball_loss"]
    for level in ("0.1", "0.5", "0.9"):  # on 20,000 test rows
        assert metrics[f"test/coverage/{level}"] == pytest.approx(float(level), abs=0.02)
        assert metrics[f"test/bayes_coverage/{level}"] == pytest.approx(float(level), abs=0.02)
