"""A sweep's summary covers that sweep's jobs: not the folders earlier sweeps left in the same sweep directory."""

from __future__ import annotations

import csv
import json
import os
import time

import pytest
from omegaconf import OmegaConf

from catbrain.commands.sweeps import SweepSummary, sweep_jobs_of
from catbrain.run.sweep_folders import rows_of_sweep
from tests.conftest import run_cli

TINY = ["data.n_train=256", "trainer.max_epochs=2", "callbacks=model_checkpoint", "logger=none", "plots=false"]
QUIET = ["trainer.enable_progress_bar=false", "optimizer=sgd"]
PRECHECKED = "hydra_plugins.catbrain_vectorized_launcher.vectorized_launcher.PrecheckedSweeper"


def job_folder(sweep_dir, name, overrides, outcome=None, metrics=None):
    """A job's folder as Hydra and the summary callback leave it: ``.hydra/overrides.yaml``, maybe ``job.json``
    (none: killed before its end) and ``metrics.json``."""
    folder = sweep_dir / name
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if outcome is not None:
        (folder / "job.json").write_text(json.dumps(outcome))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def multirun_config(sweep_dir, task, sweeper=PRECHECKED, params=None):
    """The parts of a multirun config that ``on_multirun_end`` reads."""
    sweeper_node = {"_target_": sweeper, **({"params": params} if params else {})}
    return OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep_dir)}, "sweeper": sweeper_node,
                                       "overrides": {"task": task}}})  # fmt: skip


def test_the_jobs_of_a_sweep_are_the_basic_sweepers_in_its_numbering(tmp_path):
    config = multirun_config(tmp_path, ["optimizer=sgd", "optimizer.lr=0.1,0.01", "seed=range(2)"])
    assert sweep_jobs_of(config) == [
        ["optimizer=sgd", "optimizer.lr=0.1", "seed=0"],
        ["optimizer=sgd", "optimizer.lr=0.1", "seed=1"],
        ["optimizer=sgd", "optimizer.lr=0.01", "seed=0"],
        ["optimizer=sgd", "optimizer.lr=0.01", "seed=1"],
    ]
    basic = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    assert sweep_jobs_of(multirun_config(tmp_path, ["seed=1"], basic, {"data.n_train": "128,256"})) == [
        ["data.n_train=128", "seed=1"],
        ["data.n_train=256", "seed=1"],
    ]  # the sweeper's params first, as it makes them
    assert sweep_jobs_of(multirun_config(tmp_path, ["seed=0,1"], "catbrain.run.summary.Row")) is None  # its own


def test_jobs_kept_from_a_killed_run_count_and_folders_of_other_sweeps_do_not(tmp_path):
    jobs = [["lr=0.1", "seed=0"], ["lr=0.1", "seed=1"], ["lr=0.2", "seed=0"], ["lr=0.2", "seed=1"]]
    ok = {"val/loss": 0.5}
    job_folder(tmp_path, "0", jobs[0], {"number": 0, "status": "ok"}, ok)  # kept: no on_job_end in this run
    job_folder(tmp_path, "1", jobs[1])  # killed before it ended
    job_folder(tmp_path, "2", ["lr=0.02", "seed=2"], {"number": 2, "status": "ok"}, {"val/loss": 0.01})
    job_folder(tmp_path, "5", ["lr=0.02", "seed=5"], {"number": 5, "status": "ok"}, {"val/loss": 0.001})
    job_folder(tmp_path, "lr=0.2,seed=1", jobs[3])  # a hydra.sweep.subdir of the user's, killed: its overrides say
    rows, left_out = rows_of_sweep(tmp_path, jobs)
    assert [(r.number, r.status) for r in rows] == [(0, "ok"), (1, "failed"), (2, "failed"), (3, "failed")]
    assert [r.overrides for r in rows] == jobs and left_out == 2
    assert rows[0].metrics == ok and rows[1].error == "no outcome recorded: the job was interrupted"
    assert rows[2].error == f"not run: {tmp_path / '2'} holds another sweep's job" and rows[2].metrics == {}
    assert rows[3].run_dir == str(tmp_path / "lr=0.2,seed=1")
    job_folder(tmp_path, "3", jobs[3], {"number": 3, "status": "ok"}, ok)  # two folders for job 3: the first counts
    assert [r.run_dir for r in rows_of_sweep(tmp_path, jobs)[0]][3] == str(tmp_path / "3")


def test_without_the_job_list_the_folders_started_since_the_sweep_began_count(tmp_path):
    old = job_folder(tmp_path, "0", ["seed=0"], {"number": 0, "status": "ok"})
    job_folder(tmp_path, "1", ["seed=1"], {"number": 1, "status": "ok"})
    an_hour_ago = time.time() - 3600
    os.utime(old / ".hydra/overrides.yaml", (an_hour_ago, an_hour_ago))
    rows, left_out = rows_of_sweep(tmp_path, None, since=time.time() - 60)
    assert [r.number for r in rows] == [1] and left_out == 1
    assert [r.number for r in rows_of_sweep(tmp_path)[0]] == [0, 1]  # nothing known: every folder


def test_a_misspelt_summary_metric_names_every_metric_the_jobs_have(tmp_path, capsys):
    metrics = {"val/loss": 0.2, "val/decision_acc": 0.9, "test/loss": 0.3, "fit_seconds": 1.5}
    job_folder(tmp_path, "0", ["seed=0"], {"number": 0, "status": "ok"}, metrics)
    job_folder(tmp_path, "1", ["seed=1"], {"number": 1, "status": "ok"}, metrics)
    with pytest.raises(SystemExit) as stopped:
        SweepSummary(metric="val/los").on_multirun_end(multirun_config(tmp_path, ["seed=0,1"]))
    assert stopped.value.code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line == (
        "catbrain-train: error: hydra.callbacks.summary.metric='val/los' is in no job's metrics.json; "
        "did you mean 'val/loss'?; the jobs' metrics: fit_seconds, test/loss, val/decision_acc, val/loss"
    )


def read_csv(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


@pytest.mark.parametrize("launcher", ["basic", "vectorized"])
def test_a_sweep_run_again_in_a_larger_old_sweep_folder_summarises_its_own_jobs(launcher, tmp_path):
    command = ["catbrain-train", "-m", *TINY, *QUIET, "hydra.sweep.dir=sweep"]
    if launcher == "vectorized":
        command.append("hydra/launcher=vectorized")
    earlier = run_cli(*command, "optimizer.lr=0.1", "seed=0,1,2,3", cwd=tmp_path)
    assert earlier.returncode == 0, earlier.stderr
    (tmp_path / "sweep/0/job.json").unlink()  # as if the earlier sweep was killed in job 0: run again, it trains
    written = (tmp_path / "sweep/1/metrics.json").stat().st_mtime_ns
    result = run_cli(*command, "optimizer.lr=0.1", "seed=0,1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    kept = (tmp_path / "sweep/1/metrics.json").stat().st_mtime_ns == written
    assert kept == (launcher == "vectorized")  # the vectorized launcher keeps job 1, finished: no on_job_end for it
    sweep_dir = tmp_path / "sweep"
    rows = read_csv(sweep_dir / "summary.csv")
    assert [(row["job"], row["status"], row["overrides"].split()[-1]) for row in rows] == [
        ("0", "ok", "seed=0"),
        ("1", "ok", "seed=1"),
    ]
    markdown = (sweep_dir / "summary.md").read_text()
    assert "2 jobs: 2 ok" in markdown and "left out: 2 job folders of earlier sweeps in sweep" in markdown
    assert "left out: 2 job folders of earlier sweeps in sweep" in result.stdout
    assert {row["jobs"] for row in read_csv(sweep_dir / "seeds.csv")} == {"0 1"}


@pytest.mark.parametrize("setting", ["hydra.output_subdir=null", "seed=shuffle(range(3))"])
def test_a_sweep_without_hydra_folders_or_in_shuffled_order_is_summarised_whole(setting, tmp_path):
    """No .hydra/ (the job's job.json holds its overrides), or jobs numbered in a drawn order (the summary takes the
    jobs as the sweeper launched them, not as a second draw would number them)."""
    seeds = [] if "seed=" in setting else ["seed=0,1,2"]
    result = run_cli("catbrain-train", "-m", *TINY, *QUIET, *seeds, setting, "hydra.sweep.dir=sweep", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = read_csv(tmp_path / "sweep" / "summary.csv")
    assert [row["status"] for row in rows] == ["ok"] * 3 and "left out" not in result.stdout
    assert sorted(row["overrides"].split()[-1] for row in rows) == ["seed=0", "seed=1", "seed=2"]
