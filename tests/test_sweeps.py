"""Sweeps and searches: summaries of -m sweeps (basic and joblib launchers), and catbrain-search with Optuna."""

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from catbrain.run import summary as sweeps
from catbrain.run.sweep_folders import rows_of_sweep
from tests.conftest import BIN, run_cli

REPO = Path(__file__).resolve().parents[1]

TINY = ["data.n_train=256", "trainer.max_epochs=2", "callbacks=model_checkpoint", "logger=none"]
QUIET = ["trainer.enable_progress_bar=false"]


def read_summary(directory):
    with open(directory / "summary.csv", newline="") as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A basic-launcher sweep of three tiny runs, the second with a learning rate that makes training diverge."""
    workdir = tmp_path_factory.mktemp("sweep")
    result = run_cli(
        "catbrain-train", "-m", *TINY, *QUIET, "optimizer=sgd", "optimizer.lr=0.01,1e6,0.05", "hydra.sweep.dir=sweep",
        cwd=workdir,
    )  # fmt: skip
    return workdir / "sweep", result


def test_a_sweep_summary_has_one_row_per_job_and_the_best_run(swept):
    sweep_dir, result = swept
    rows = read_summary(sweep_dir)
    assert [row["job"] for row in rows] == ["0", "1", "2"]
    assert [row["status"] for row in rows] == ["ok", "failed", "ok"]
    swept_values = ["optimizer.lr=0.01", "optimizer.lr=1000000.0", "optimizer.lr=0.05"]
    assert [row["overrides"].split()[-1] for row in rows] == swept_values
    for row in (rows[0], rows[2]):  # the metrics are the runs' own
        metrics = json.loads((sweep_dir / row["job"] / "metrics.json").read_text())
        assert float(row["test/loss"]) == pytest.approx(metrics["test/loss"], rel=1e-5)
        assert float(row["val/loss"]) == pytest.approx(metrics["val/loss"], rel=1e-5)
        assert row["run_dir"].endswith(f"sweep/{row['job']}")
    # The checkpoint callback monitors val/loss (min): the best run is the one of lowest val/loss, not test/loss.
    losses = {row["job"]: float(row["val/loss"]) for row in (rows[0], rows[2])}
    best = min(losses, key=losses.get)
    assert [row["job"] for row in rows if row["best"] == "yes"] == [best]
    markdown = (sweep_dir / "summary.md").read_text()
    assert f"**best job:** {best} (val/loss = " in markdown and "`optimizer.lr=1e+06`" in markdown
    assert "catbrain-train sweep" in result.stdout and f"best job: {best}" in result.stdout


def test_a_failed_job_is_a_row_and_one_line_and_the_sweep_goes_on(swept):
    sweep_dir, result = swept
    failed = read_summary(sweep_dir)[1]
    divergence = "DivergenceError: train/loss became inf at step"
    assert failed["status"] == "failed" and failed["reason"].startswith(divergence)
    assert (sweep_dir / "2/metrics.json").is_file()  # the job after the failed one ran
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 2 and errors[0].startswith(f"catbrain-train: error: job 1: {divergence}")
    assert errors[1] == "catbrain-train: error: 1 of 3 jobs failed (job 1)"
    assert result.returncode == 1


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ("optimizer.lr=0.1,-1", "optimizer.lr=-1: must be a number > 0"),
        ("optimizer=adam,nesterov", "optimizer=nesterov: no such option"),
    ],
)
def test_a_sweep_with_a_bad_job_config_stops_before_any_job(sweep, expected, tmp_path):
    result = run_cli("catbrain-train", "-m", *TINY, sweep, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("catbrain-train: error: ") and expected in line
    assert not (tmp_path / "multirun").exists()


def test_the_best_run_by_another_metric_and_direction(swept, tmp_path):
    rows, left_out = rows_of_sweep(swept[0])
    assert left_out == 0
    best = sweeps.write_summary(tmp_path, rows, "test/decision_acc", "max", "by accuracy")
    accuracy = {r.number: r.metrics["test/decision_acc"] for r in rows if r.status == "ok"}
    assert best.number == max(accuracy, key=accuracy.get)
    assert [row["best"] for row in read_summary(tmp_path)].count("yes") == 1
    assert sweeps.best_row([r for r in rows if r.status == "failed"], "test/loss", "min") is None


def test_a_bad_summary_direction_is_one_line(tmp_path):
    result = run_cli("catbrain-train", "-m", *TINY, "hydra.callbacks.summary.direction=up", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "catbrain-train: error: hydra.callbacks.summary.direction='up': must be one of ['min', 'max']"
    ]


@pytest.mark.slow
def test_a_joblib_sweep_runs_jobs_in_processes_into_one_sweep_directory(swept, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher", reason="needs the sweep extra: pip install -e .[sweep]")
    # No hydra.sweep.dir: the default one, with its ${pid:}, must be the same for jobs in other processes.
    result = run_cli(
        "catbrain-train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY, *QUIET,
        "optimizer=sgd", "optimizer.lr=0.01,0.05", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (sweep_dir,) = (tmp_path / "multirun").iterdir()
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0", "1"]
    rows = read_summary(sweep_dir)
    assert [row["status"] for row in rows] == ["ok", "ok"]
    # Same seed, same runs as the basic launcher's in this process or another.
    basic = read_summary(swept[0])
    assert rows[0]["test/loss"] == basic[0]["test/loss"] and rows[1]["test/loss"] == basic[2]["test/loss"]


# ---- catbrain-search -------------------------------------------------------------------------------------------


def write_search(path, n_trials=4, seed=2, **extra):
    """A search of tiny runs over three learning rates: 0.1 trains, 1e-5 hardly moves, -1 is refused."""
    lines = [
        f"n_trials: {n_trials}",
        "metric: val/loss",
        "direction: min",
        f"seed: {seed}",
        "pruner: {_target_: optuna.pruners.ThresholdPruner, upper: 0.2}",  # val/loss: 0.13 (lr 0.1), 0.26 (lr 1e-5)
        f"overrides: [{', '.join(TINY)}]",
        "params:",
        "  optimizer.lr: {type: categorical, choices: [0.1, 1.0e-5, -1.0]}",
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def load_study(search_dir):
    import optuna

    return optuna.load_study(study_name=None, storage=f"sqlite:///{search_dir / 'search.db'}")


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    pytest.importorskip("optuna", reason="needs the sweep extra: pip install -e .[sweep]")
    from catbrain.commands.search import run_search

    workdir = tmp_path_factory.mktemp("search")
    config = write_search(workdir / "lr.yaml")
    assert run_search([f"search={config}", f"search.dir={workdir / 'lr'}"]) == 0
    return workdir, config


def test_a_search_survives_a_crashing_trial_and_prunes_a_bad_one(searched):
    workdir, _ = searched
    trials = load_study(workdir / "lr").trials
    states = {t.number: (t.params["optimizer.lr"], t.state.name) for t in trials}
    expected = {0.1: "COMPLETE", 1e-5: "PRUNED", -1.0: "FAIL"}
    assert len(trials) == 4 and all(state == expected[lr] for lr, state in states.values())
    assert {lr for lr, _ in states.values()} == set(expected), "the seed should draw every choice"
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert failed.user_attrs["error"] == "optimizer.lr=-1.0: must be a number > 0"
    pruned = next(t for t in trials if t.state.name == "PRUNED")
    assert pruned.intermediate_values == {0: pytest.approx(0.2615, abs=0.01)}  # pruned after its first epoch
    assert not (workdir / "lr" / str(pruned.number) / "metrics.json").exists()
    completed = next(t for t in trials if t.state.name == "COMPLETE")
    metrics = json.loads((workdir / "lr" / str(completed.number) / "metrics.json").read_text())
    assert completed.value == metrics["val/loss"]


def test_a_search_summary_lists_every_trial_and_the_best(searched):
    workdir, _ = searched
    trials = load_study(workdir / "lr").trials
    rows = read_summary(workdir / "lr")
    assert [int(row["trial"]) for row in rows] == [t.number for t in trials]
    status = {"COMPLETE": "ok", "FAIL": "failed", "PRUNED": "pruned"}
    assert [row["status"] for row in rows] == [status[t.state.name] for t in trials]
    best = min((t for t in trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert [row["trial"] for row in rows if row["best"] == "yes"] == [str(best.number)]
    assert rows[best.number]["run_dir"] == str((workdir / "lr" / str(best.number)).resolve())
    assert "**best trial:**" in (workdir / "lr/summary.md").read_text()


def test_a_search_run_again_continues_its_study(searched):
    from catbrain.commands.search import run_search

    workdir, config = searched
    before = [(t.number, t.params, t.state.name) for t in load_study(workdir / "lr").trials]
    assert run_search([f"search={config}", f"search.dir={workdir / 'lr'}", "search.n_trials=6"]) == 0
    after = load_study(workdir / "lr").trials
    assert len(after) == 6 and [(t.number, t.params, t.state.name) for t in after[:4]] == before
    assert sorted(int(p.name) for p in (workdir / "lr").iterdir() if p.is_dir()) == list(range(6))
    assert len(read_summary(workdir / "lr")) == 6


def test_a_trial_left_running_by_a_dead_search_is_marked_failed(tmp_path):
    pytest.importorskip("optuna", reason="needs the sweep extra: pip install -e .[sweep]")
    from catbrain.commands.search import run_search

    config = write_search(tmp_path / "lr.yaml", n_trials=1)
    search = [f"search={config}", f"search.dir={tmp_path / 's'}", "search.params.optimizer.lr.choices=[0.1]"]
    run_search(search)
    search_dir = tmp_path / "s"
    load_study(search_dir).ask()  # trial 1 starts, and its process "dies"
    run_search([*search, "search.n_trials=3"])
    trials = load_study(search_dir).trials
    assert len(trials) == 4 and trials[1].state.name == "FAIL"  # run again: three trials ran to their end
    assert trials[1].user_attrs["error"] == "interrupted: its search process died"
    assert [t.state.name for t in trials if t.number != 1] == ["COMPLETE"] * 3


def test_a_search_refuses_other_settings_in_the_same_directory(searched):
    from catbrain.commands.search import run_search
    from catbrain.errors import UsageError

    workdir, config = searched
    with pytest.raises(UsageError, match="holds a study with other overrides"):
        run_search([f"search={config}", f"search.dir={workdir / 'lr'}", "data.n_train=512"])


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ([], "search=NAME is required (one of ['cat_threat_lr']"),
        (["search=nope"], "search='nope': no such search config"),
        (["search=cat_threat_lr", "search.trials=3"], "search.trials: unknown search key"),
        (["search=cat_threat_lr", "search.direction=up"], "search.direction='up': must be one of ['min', 'max']"),
        (["search=cat_threat_lr", "search.n_trials=0"], "search.n_trials=0: must be a positive integer"),
        (["search=cat_threat_lr", "optimizer=nesterov"], "Could not find 'optimizer/nesterov'"),
        (["search=cat_threat_lr", "search.params.optimizer.lr.low=0"], "low=0: must be > 0 with log: true"),
    ],
)
def test_bad_search_input_is_one_line_and_exit_2(arguments, expected, tmp_path):
    pytest.importorskip("optuna", reason="needs the sweep extra: pip install -e .[sweep]")
    result = run_cli("catbrain-search", *arguments, cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("catbrain-search: error: ") and expected in line
    assert not (tmp_path / "searches").exists()


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "conf/search").glob("*.yaml")))
def test_every_search_config_loads_and_its_training_config_composes(name, tmp_path):
    pytest.importorskip("optuna", reason="needs the sweep extra: pip install -e .[sweep]")
    from catbrain.commands.search import check_training_overrides, load_search_config

    cfg = load_search_config(name, [])
    assert cfg.name == name and cfg.params
    check_training_overrides([str(o) for o in cfg.overrides], cfg.params, tmp_path)


def test_search_help_names_the_configs_and_keys(tmp_path):
    result = run_cli("catbrain-search", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "cat_threat_lr" in result.stdout and "n_trials" in result.stdout


@pytest.mark.slow
def test_the_example_search_runs_and_a_killed_search_resumes(tmp_path):
    """The README's example runs through; a search killed (SIGKILL) mid-trial continues where it stood."""
    pytest.importorskip("optuna", reason="needs the sweep extra: pip install -e .[sweep]")
    example = run_cli("catbrain-search", "search=cat_threat_lr", "search.n_trials=4", cwd=tmp_path)
    assert example.returncode == 0, example.stderr
    assert len(read_summary(tmp_path / "searches/cat_threat_lr")) == 4

    config = write_search(tmp_path / "lr.yaml", n_trials=3)
    killer = ["+callbacks.kill._target_=tests.helpers.KillOnce", "+callbacks.kill.step=2",
              f"+callbacks.kill.marker={tmp_path / 'killed'}", "search.params.optimizer.lr.choices=[0.1]"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # tests.helpers, for the callback that kills the process
    command = [str(BIN / "catbrain-search"), f"search={config}", "search.dir=s", *killer]
    killed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert killed.returncode == -9 and (tmp_path / "killed").exists()
    assert [t.state.name for t in load_study(tmp_path / "s").trials] == ["RUNNING"]
    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    # The killed trial is run again, not counted: n_trials=3 finished trials.
    assert [t.state.name for t in load_study(tmp_path / "s").trials] == ["FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
    assert [row["status"] for row in read_summary(tmp_path / "s")] == ["failed", "ok", "ok", "ok"]
