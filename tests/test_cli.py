"""The entry points end to end, run as a user runs them: train, evaluate, predict, and bad input."""

import json
import random

import pytest

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The default experiment, trained once by ``catbrain-train`` with no overrides but the run directory."""
    workdir = tmp_path_factory.mktemp("train")
    result = run_cli("catbrain-train", "hydra.run.dir=run", cwd=workdir)
    assert result.returncode == 0, result.stderr
    return workdir / "run", result


def test_train_writes_the_run_directory_contract(trained):
    run_dir, result = trained
    for name in ("metrics.json", "config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt", ".hydra/config.yaml"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    words = {"stopped", "stopped_reason"}  # why training stopped: a reason and a sentence
    assert all(isinstance(value, (int, float)) for key, value in metrics.items() if key not in words)
    assert all(isinstance(metrics[key], str) for key in words)
    assert {"test/mse", "test/decision_acc", "test/bayes_mse", "test/bayes_decision_acc"} <= set(metrics)
    assert "cat_threat" in result.stdout and "teacher" in result.stdout


def test_default_run_recovers_the_books_teacher(trained):
    metrics = json.loads((trained[0] / "metrics.json").read_text())
    assert metrics["weight/hardness"] == pytest.approx(1.0, abs=0.05)
    assert metrics["weight/sharpness"] == pytest.approx(1.0, abs=0.05)
    assert metrics["bias"] == pytest.approx(-1.0, abs=0.05)
    assert metrics["test/decision_acc"] > metrics["test/bayes_decision_acc"] - 0.01


def test_eval_reproduces_the_test_metrics(trained, tmp_path):
    run_dir, _ = trained
    result = run_cli(
        "catbrain-eval", f"ckpt_path={run_dir / 'checkpoints/best.ckpt'}", "hydra.run.dir=eval", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    trained_metrics = json.loads((run_dir / "metrics.json").read_text())
    evaluated = json.loads((tmp_path / "eval/metrics.json").read_text())
    for key in ("test/mse", "test/mae", "test/decision_acc", "test/bayes_mse"):
        assert evaluated[key] == pytest.approx(trained_metrics[key], rel=1e-6), key


def test_eval_on_fresh_data_differs_but_stays_close(trained, tmp_path):
    run_dir, _ = trained
    ckpt = f"ckpt_path={run_dir / 'checkpoints/best.ckpt'}"
    result = run_cli("catbrain-eval", ckpt, "data.seed=123", "data.n_test=2000", "hydra.run.dir=eval", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((tmp_path / "eval/metrics.json").read_text())
    trained_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert evaluated["test/mse"] != trained_metrics["test/mse"]
    assert evaluated["test/mse"] == pytest.approx(evaluated["test/bayes_mse"], rel=0.1)


def test_eval_on_given_test_data_from_a_csv(trained, tmp_path):
    lines = ["sharpness,hardness,score,note"]
    for hardness, sharpness in [(0.9, 0.8), (0.1, 0.2), (0.5, 0.6), (0.3, 0.3)]:
        lines.append(f"{sharpness},{hardness},{hardness + sharpness - 1},seen")
    (tmp_path / "given.csv").write_text("\n".join(lines) + "\n")
    ckpt = f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}"
    result = run_cli("catbrain-eval", ckpt, "data=csv", "data.test_path=given.csv", "hydra.run.dir=eval", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((tmp_path / "eval/metrics.json").read_text())
    assert evaluated["test/mse"] < 0.01 and evaluated["test/decision_acc"] == 1.0


def test_predict_names_the_cats_decision(trained, tmp_path):
    ckpt = f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}"
    result = run_cli("catbrain-predict", ckpt, "input=[[0.9, 0.8], [0.1, 0.2]]", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2 and "run_away" in lines[0] and "approach" in lines[1]

    as_json = run_cli("catbrain-predict", ckpt, "input=[[0.9, 0.8], [0.1, 0.2]]", "format=json", cwd=tmp_path)
    predictions = json.loads(as_json.stdout)
    assert [p["prediction"] for p in predictions] == ["run_away", "approach"]
    assert predictions[0]["score"] == pytest.approx(0.7, abs=0.05)
    # How far the score is from each threshold: above both for run_away, below both for approach.
    margins = predictions[0]["margins"]
    assert margins["ignore|run_away"]["threshold"] == 0.25
    assert margins["ignore|run_away"]["distance"] == pytest.approx(predictions[0]["score"] - 0.25)
    assert all(m["distance"] < 0 for m in predictions[1]["margins"].values())
    assert "from +0.25 (ignore|run_away)" in lines[0]


def test_predict_reads_a_csv_by_feature_name(trained, tmp_path):
    (tmp_path / "objects.csv").write_text("name,sharpness,hardness\nknife,0.95,0.9\npillow,0.05,0.1\nball,0.5,0.5\n")
    ckpt = f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}"
    result = run_cli("catbrain-predict", ckpt, "input_path=objects.csv", "format=json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [p["prediction"] for p in json.loads(result.stdout)] == ["run_away", "approach", "ignore"]


def test_resume_continues_a_run_with_its_own_config(tmp_path):
    first = run_cli(
        "catbrain-train", "experiment=weather_3pm", "data.n_train=512", "data.batch_size=64",
        "trainer.max_epochs=2", "callbacks=model_checkpoint", "hydra.run.dir=first", cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    # No experiment named here: it comes from the checkpoint, and max_epochs is extended.
    last = tmp_path / "first/checkpoints/last.ckpt"
    resumed = run_cli(
        "catbrain-train", f"ckpt_path={last}", "trainer.max_epochs=4", "hydra.run.dir=second", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    metrics = json.loads((tmp_path / "second/metrics.json").read_text())
    assert metrics["steps"] == 4 * 512 // 64 and "test/r2" in metrics
    assert "weather_3pm" in resumed.stdout


@pytest.mark.parametrize(
    ("command", "arguments", "expected"),
    [
        ("catbrain-train", ["experiment=no_such_experiment"], "experiment=no_such_experiment: no such option"),
        ("catbrain-train", ["optimizer=nesterov"], "optimizer=nesterov: no such option"),
        ("catbrain-train", ["data.no_such_key=1"], "no_such_key"),
        ("catbrain-train", ["ckpt_path=missing.ckpt"], "ckpt_path='missing.ckpt' does not exist"),
        ("catbrain-eval", ["ckpt_path=missing.ckpt"], "ckpt_path='missing.ckpt' does not exist"),
        ("catbrain-eval", [], "ckpt_path"),
        ("catbrain-predict", ["ckpt_path=missing.ckpt", "input=[[1, 2]]"], "does not exist"),
        ("catbrain-predict", ["input=[[1, 2]]"], "ckpt_path=... is required"),
        ("catbrain-predict", ["ckpt_path=x", "inputs=[[1, 2]]"], "unknown argument 'inputs=[[1, 2]]'"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(command, arguments, expected, tmp_path):
    result = run_cli(command, *arguments, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{command}: error:") and expected in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["input=[[0.9, 0.8, 0.1]]"], "input row 1 has 3 values; the model takes 2 (hardness, sharpness)"),
        (['input=[[0.9, "sharp"]]'], "input row 1, sharpness: 'sharp' is not a number"),
        (["input=[[0.9, NaN]]"], "is not a finite number"),
        (["input=[[0.9, 0.8]"], "input is not valid JSON"),
        (["input=[[0.9, 0.8]]", "format=xml"], "format='xml' is not one of ['text', 'json', 'csv']"),
        (["input_path=nowhere.csv"], "nowhere.csv does not exist or is not a file"),
    ],
)
def test_bad_prediction_input_is_refused_in_one_line(trained, arguments, expected, tmp_path):
    result = run_cli("catbrain-predict", f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}", *arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"catbrain-predict: error: {expected}"] or expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_modules_run_with_python_dash_m(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "catbrain.commands.predict", "format=json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 2 and "ckpt_path=... is required" in result.stderr


def test_a_corrupt_or_truncated_checkpoint_is_named_as_such(trained, tmp_path):
    (tmp_path / "text.ckpt").write_text("hello\n")
    good = (trained[0] / "checkpoints/best.ckpt").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(good[: len(good) // 2])
    (tmp_path / "random.ckpt").write_bytes(random.Random(0).randbytes(4096))
    for name in ("text.ckpt", "truncated.ckpt", "random.ckpt"):
        result = run_cli("catbrain-predict", f"ckpt_path={name}", "input=[[0.5, 0.5]]", cwd=tmp_path)
        assert result.returncode == 2
        (line,) = result.stderr.strip().splitlines()
        assert f"ckpt_path='{name}' is not a readable checkpoint (corrupt, truncated or not a torch file" in line


def test_eval_refuses_model_overrides(trained, tmp_path):
    ckpt = f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}"
    result = run_cli("catbrain-eval", ckpt, "model=mlp", cwd=tmp_path)
    assert result.returncode == 2 and "model overrides are not allowed" in result.stderr


def test_predict_takes_rows_by_feature_name_and_has_help(trained, tmp_path):
    ckpt = f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}"
    rows = '[{"sharpness": 0.8, "hardness": 0.9}, {"hardness": 0.1, "sharpness": 0.2}]'
    result = run_cli("catbrain-predict", ckpt, f"input={rows}", "format=json", cwd=tmp_path)
    assert [p["prediction"] for p in json.loads(result.stdout)] == ["run_away", "approach"]
    missing = run_cli("catbrain-predict", ckpt, 'input=[{"hardness": 0.9}]', cwd=tmp_path)
    assert missing.returncode == 2 and "lacks ['sharpness']" in missing.stderr
    helped = run_cli("catbrain-predict", "--help", cwd=tmp_path)
    assert helped.returncode == 0 and "input_path" in helped.stdout


def test_a_constructor_refusing_its_arguments_is_bad_input(tmp_path):
    result = run_cli("catbrain-train", "data.world.skew=[0,1]", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("catbrain-train: error: data.world: ValueError: skew must be 2 positive numbers")


def test_resume_carries_on_in_the_runs_own_directory(tmp_path):
    small = ["experiment=weather_3pm", "data.n_train=512", "data.batch_size=64", "callbacks=model_checkpoint"]
    first = run_cli("catbrain-train", *small, "trainer.max_epochs=2", "hydra.run.dir=run", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = run_cli("catbrain-train", "ckpt_path=run/checkpoints/last.ckpt", "trainer.max_epochs=3", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((tmp_path / "run/metrics.json").read_text())["steps"] == 3 * 512 // 64
    assert not (tmp_path / "outputs").exists()
    # The first part's CSV log is kept beside the new one (Lightning's CSV logger would delete it).
    assert (tmp_path / "run/csv/metrics.before_resume_1.csv").is_file() and (tmp_path / "run/csv/metrics.csv").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["data.world.noise_sd=0.5"],
            "data.world has no key 'noise_sd'; did you mean 'noise_std'?; it has ['delta', 'lopsided_fear'",
        ),
        (
            ["optimizer.lrr=0.5"],
            "optimizer has no key 'lrr'; did you mean 'lr'?; it has ['betas', 'eps', 'lr', 'weight_decay']",
        ),
        (["data.shift={skewness:[4,4]}"], "data.shift names ['skewness'], which CatWorld does not have"),
        (["model.learn_thresholds=true"], "needs task=ordinal"),
        (["data.world.skew=[3]"], "skew must be 2 positive numbers"),
        (["trainer.enable_progress_bar=false"], "e.g. callbacks=[model_checkpoint,early_stopping]"),
    ],
)
def test_values_the_constructors_refuse_stop_the_run_before_its_directory(tmp_path, arguments, message):
    result = run_cli("catbrain-train", *arguments, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert message in line
    assert not (tmp_path / "run").exists()


def test_eval_on_another_world_of_the_same_features(trained, tmp_path):
    ckpt = f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}"
    result = run_cli("catbrain-eval", ckpt, "data=cat_curved", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)
    assert result.returncode == 2  # the curved cat has decisions only: the score-trained cat brain needs scores
    assert "the task ThresholdTask learns from numbers" in result.stderr and not (tmp_path / "eval").exists()
    result = run_cli(
        "catbrain-eval", ckpt, "data=cat", "data.world.lopsided_fear=1", f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["test/bayes_decision_acc"] > metrics["test/decision_acc"] + 0.05  # a line misses the curve


def test_predict_says_when_a_row_leaves_the_training_range(trained, tmp_path):
    ckpt = f"ckpt_path={trained[0] / 'checkpoints/best.ckpt'}"
    result = run_cli("catbrain-predict", ckpt, "input=[[0.9, 0.8], [1.5, 0.5], [-0.1, 2]]", "format=json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [row.get("outside_training_range") for row in rows] == [None, ["hardness"], ["hardness", "sharpness"]]
    text = run_cli("catbrain-predict", ckpt, "input=[[1.5, 0.5]]", cwd=tmp_path).stdout
    assert text.strip().endswith("[outside the training range: hardness]")


def test_start_up_pauses_the_garbage_collector_and_keeps_its_objects_out_of_later_passes(monkeypatch):
    import gc

    from catbrain.commands import common

    monkeypatch.setattr(common, "_start_up_frozen", False)
    before = gc.get_freeze_count()
    try:
        with common.collector_paused_for_start_up():
            assert not gc.isenabled()
            made = [[] for _ in range(100)]  # start-up's objects, tracked by the collector
        assert gc.isenabled() and gc.get_freeze_count() >= before + len(made)
        frozen = gc.get_freeze_count()
        with pytest.raises(SystemExit), common.collector_paused_for_start_up():
            raise SystemExit(2)  # bad input: one line and an exit; the collector runs again all the same
        assert gc.isenabled() and gc.get_freeze_count() == frozen  # once per process
    finally:
        gc.unfreeze()
