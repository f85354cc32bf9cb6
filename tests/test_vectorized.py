"""hydra/launcher=vectorized: a sweep's jobs trained at once end as the basic launcher's runs of them end, job by job
(metrics, weights, best epoch, why they stopped); a group too big for memory is split; a killed sweep resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from catbrain.run.grouping import plan, why_alone
from tests.conftest import BIN, compose_config, run_cli

# Small runs whose stopping decides: windows of 2 validations and a tolerance of 1%, so that learning rates are
# lowered and several runs stop before their last epoch, each by its own windows.
SMALL = ["data.n_train=1024", "data.n_val=128", "data.n_test=256", "trainer.max_epochs=15",
         "callbacks.early_stopping.patience=2", "callbacks.early_stopping.lr_reductions=1",
         "callbacks.early_stopping.rel_tol=0.01", "plots=false", "logger=none"]  # fmt: skip
SWEEP = ["optimizer=sgd,adam,adamw", "optimizer.lr=0.02,0.2", "seed=0,1"]


def sweep(tmp_path, name: str, *arguments: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    result = run_cli("catbrain-train", "-m", *SMALL, *arguments, f"hydra.sweep.dir={name}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted((p for p in (tmp_path / name).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    return result, [json.loads((job / "metrics.json").read_text()) | {"dir": job} for job in jobs]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweeps")
    return sweep(folder, "basic", *SWEEP), sweep(folder, "vectorized", "hydra/launcher=vectorized", *SWEEP)


def checkpoint(job: dict, name: str) -> dict:
    return torch.load(job["dir"] / "checkpoints" / name, weights_only=True)


def test_each_job_ends_as_the_basic_launchers_run_of_it(both):
    (_, basic), (result, vectorized) = both
    assert "jobs 0-3 train together as one stacked model" in result.stderr  # sgd; then adam 4-7, adamw 8-11
    assert "jobs 8-11 train together" in result.stderr and "runs alone" not in result.stderr
    assert len(basic) == len(vectorized) == 12
    stopped_early = 0
    for alone, together in zip(basic, vectorized):
        assert set(alone) == set(together), alone["dir"]
        for key, value in alone.items():
            if key == "dir" or "seconds" in key:
                continue
            if isinstance(value, str):
                assert together[key] == value, (alone["dir"].name, key)
            else:
                assert together[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (alone["dir"].name, key)
        stopped_early += alone["epochs"] < 15
        for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "config.yaml", "job.json"):
            own, stacked = (job["dir"] / name for job in (alone, together))
            assert stacked.read_text().replace("/vectorized/", "/basic/") == own.read_text(), name  # Hydra's words
        log = (together["dir"] / "train.log").read_text()  # the job's log, as Hydra sets it up: what it did
        assert f"stacked model: {together['epochs']} epochs" in log and "tested the weights of epoch" in log
        hydra = yaml.safe_load((together["dir"] / ".hydra" / "hydra.yaml").read_text())["hydra"]
        assert hydra["runtime"]["output_dir"] == str(together["dir"]) and hydra["job"]["num"] == int(alone["dir"].name)
        for name in ("best.ckpt", "last.ckpt"):
            own, stacked = checkpoint(alone, name), checkpoint(together, name)
            assert (stacked["epoch"], stacked["global_step"]) == (own["epoch"], own["global_step"])  # best epoch
            for key, tensor in own["state_dict"].items():
                torch.testing.assert_close(stacked["state_dict"][key], tensor, rtol=1e-5, atol=1e-7)
    assert stopped_early >= 2  # the comparison covers jobs that stopped early, by their own windows


@pytest.mark.slow
def test_a_stacked_jobs_checkpoint_serves_predict_eval_and_export(both, tmp_path):
    (_, _), (_, vectorized) = both
    best = vectorized[5]["dir"] / "checkpoints" / "best.ckpt"
    predicted = run_cli("catbrain-predict", f"ckpt_path={best}", "input=[[0.9, 0.8]]", "format=json", cwd=tmp_path)
    assert predicted.returncode == 0 and json.loads(predicted.stdout)[0]["prediction"] in {"run_away", "ignore"}
    evaluated = run_cli("catbrain-eval", f"ckpt_path={best}", "plots=false", "logger=none",
                        f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path)  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["test/mse"] == pytest.approx(vectorized[5]["test/mse"], rel=1e-5)  # the same test rows
    exported = run_cli("catbrain-export", f"ckpt_path={best}", "format=torchscript", f"out={tmp_path / 'm.pt'}",
                       cwd=tmp_path)  # fmt: skip
    assert exported.returncode == 0, exported.stderr


@pytest.mark.slow
def test_a_group_too_big_for_its_memory_is_split(both, tmp_path):
    (_, basic), _ = both
    result, split = sweep(tmp_path, "split", "hydra/launcher=vectorized", "hydra.launcher.memory_bytes=1",
                          "optimizer=adam", "optimizer.lr=0.02,0.2", "seed=0,1")  # fmt: skip
    assert "train together as one stacked model, in groups of 1 (memory)" in result.stderr
    for job, alone in zip(split, basic[4:8]):  # the basic sweep's adam jobs, in the same order
        assert job["test/mse"] == pytest.approx(alone["test/mse"], rel=1e-5)
        assert job["epochs"] == alone["epochs"]


@pytest.mark.slow
def test_a_killed_vectorized_sweep_run_again_keeps_the_finished_jobs_and_ends_the_others(tmp_path):
    arguments = [*SMALL, "plots=true", "hydra/launcher=vectorized", "optimizer.lr=0.02,0.05,0.1", "seed=0,1",
                 "hydra.sweep.dir=killed"]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([str(BIN / "catbrain-train"), "-m", *arguments], cwd=tmp_path, env=environment,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    first = tmp_path / "killed" / "0" / "job.json"
    deadline = time.monotonic() + 300
    while not first.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)  # while the other jobs are being written (pictures take a while)
    process.wait()
    done = [p.parent.name for p in (tmp_path / "killed").glob("*/job.json")]
    assert "0" in done and len(done) < 6, f"the kill came too late to test anything: {done}"
    kept = {name: (tmp_path / "killed" / name / "metrics.json").stat().st_mtime_ns for name in done}
    again = subprocess.run([str(BIN / "catbrain-train"), "-m", *arguments], cwd=tmp_path, env=environment,
                           capture_output=True, text=True)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{len(done)} jobs already finished" in again.stderr
    for name, mtime in kept.items():  # kept as they were
        assert (tmp_path / "killed" / name / "metrics.json").stat().st_mtime_ns == mtime
    summary = (tmp_path / "killed" / "summary.csv").read_text().splitlines()
    assert len(summary) == 7 and all(",ok," in line for line in summary[1:])


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (["optimizer=lbfgs"], "its optimizer (LBFGS) is not one the stacked optimizer has"),
        (["scheduler=cosine"], "a learning-rate scheduler is not vectorized"),
        (["trainer.max_steps=10"], "trainer.max_steps=10 is not vectorized"),
        (["trainer.accumulate_grad_batches=2"], "trainer.accumulate_grad_batches=2 is not vectorized"),
        (["debug=fast_dev_run"], "trainer.fast_dev_run=True is not vectorized"),
        (["+trainer.limit_train_batches=0.5"], "trainer.limit_train_batches=0.5 is not vectorized"),
        (["+trainer.min_epochs=5"], "trainer.min_epochs=5 is not vectorized"),
        (["debug=profiler"], "trainer.profiler="),
        (["+trainer.val_check_interval=1"], "trainer.val_check_interval validates within epochs"),  # each batch
        (["+trainer.some_future_setting=1"], "trainer.some_future_setting=1 is not vectorized"),
        (["callbacks.early_stopping.monitor=val/mse"], "callbacks.early_stopping.monitor=val/mse is not vectorized"),
        (["callbacks.model_checkpoint.save_top_k=3"], "callbacks.model_checkpoint.save_top_k=3 is not vectorized"),
        (["+callbacks.model_checkpoint.every_n_epochs=2"], "callbacks.model_checkpoint.every_n_epochs=2 is not"),
        (["callbacks.model_checkpoint.dirpath=/tmp/elsewhere"], "dirpath is not the run's checkpoints folder"),
        (
            ["+callbacks.swa={_target_: pytorch_lightning.callbacks.StochasticWeightAveraging, swa_lrs: 0.01}"],
            "callbacks.swa (StochasticWeightAveraging) is not vectorized",
        ),
        ([], None),
        (["+trainer.enable_checkpointing=false"], "trainer.enable_checkpointing=False is not vectorized"),
        (["+callbacks.again={_target_: catbrain.run.stopping.Stopping}"], "more than one stopping rule"),
        (["~callbacks.early_stopping", "+callbacks.stop={_target_: catbrain.run.stopping.Stopping}"], None),
        (["callbacks=none"], None),  # no checkpoints and no stopping, as a run alone
        (["debug=overfit"], None),  # early_stopping: null is no callback
        (["callbacks=model_checkpoint", "trainer.val_check_interval=1.0"], None),
    ],
)
def test_which_jobs_can_join_a_group(overrides, reason, tmp_path):
    found = why_alone(compose_config(overrides, tmp_path))
    assert found == reason if reason is None else reason in found


def test_jobs_group_by_all_but_seeds_and_optimizer_numbers(tmp_path):
    overrides = [["seed=1"], ["seed=2", "optimizer.lr=0.3"], ["data.n_train=99"], ["optimizer=lbfgs"],
                 ["data.seed=5", "optimizer.weight_decay=0.1"]]  # fmt: skip
    configs = [compose_config(o, tmp_path) for o in overrides]
    groups, alone = plan(configs)
    assert groups == [[0, 1, 4]]
    assert sorted(alone) == [2, 3] and "shares its settings" in alone[2] and "LBFGS" in alone[3]


def test_the_launcher_is_found_where_hydra_looks(tmp_path):
    found = subprocess.run([sys.executable, "-c", "from hydra.core.plugins import Plugins; from hydra.plugins.launcher "
                            "import Launcher; print([p.__name__ for p in Plugins.instance().discover(Launcher)])"],
                           capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert "VectorizedLauncher" in found.stdout, found.stderr


@pytest.mark.parametrize(
    ("base", "job", "same"),
    [
        (["optimizer.lr=0.01", "seed=0"], ["optimizer.lr=0.1", "seed=3"], True),
        (["optimizer=sgd", "optimizer.momentum=0.5"], ["optimizer=sgd", "optimizer.momentum=0.9"], True),
        (["seed=1", "data.seed=2"], ["seed=4", "data.seed=5"], True),
        (["optimizer.lr=0.01"], ["data.seed=3"], False),  # other keys: composed
        (["optimizer=sgd"], ["optimizer=adam"], False),  # a group
        (["data.n_train=100"], ["data.n_train=200"], False),  # not a per-job key
    ],
)
def test_a_jobs_config_derived_from_another_is_the_one_hydra_composes(base, job, same, tmp_path):
    from omegaconf import OmegaConf

    from catbrain.compat.hydra import derive_job_config
    from catbrain.config import compose

    derived = derive_job_config(compose("train", base), base, job)
    if not same:
        assert derived is None
        return
    assert OmegaConf.to_container(derived) == OmegaConf.to_container(compose("train", job))


def with_both_launchers(tmp_path, *arguments: str) -> dict[str, subprocess.CompletedProcess]:
    """The sweep ``arguments`` with the basic and the vectorized launcher, each into ``tmp_path / <launcher>``."""
    return {launcher: run_cli("catbrain-train", "-m", *arguments, f"hydra/launcher={launcher}",
                              f"hydra.sweep.dir={launcher}", cwd=tmp_path)
            for launcher in ("basic", "vectorized")}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("experiment", ["weather_3pm_quantiles", "cat_softmax", "cat_ordinal", "cat_nonlinear_mlp",
                                        "lion_shift"])  # fmt: skip
def test_every_kind_of_task_ends_as_the_basic_launchers_run(experiment, tmp_path):
    tiny = [f"experiment={experiment}", "data.n_train=512", "trainer.max_epochs=3", "seed=0,1"]
    runs = {}
    for launcher, result in with_both_launchers(tmp_path, *tiny, "plots=false", "logger=none").items():
        assert result.returncode == 0, result.stderr[-3000:]
        runs[launcher] = [json.loads((tmp_path / launcher / str(j) / "metrics.json").read_text()) for j in range(2)]
    for alone, together in zip(runs["basic"], runs["vectorized"]):
        assert set(alone) == set(together)
        for key, value in alone.items():
            if "seconds" not in key and not isinstance(value, str):
                assert together[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (experiment, key)


@pytest.mark.slow
def test_a_diverging_job_fails_alone_with_the_basic_launchers_words(tmp_path):
    tiny = ["data.n_train=256", "trainer.max_epochs=2", "plots=false", "logger=none", "optimizer=sgd",
            "optimizer.lr=0.01,1e6", "seed=0"]  # fmt: skip
    said = {}
    for launcher, result in with_both_launchers(tmp_path, *tiny).items():
        assert result.returncode == 1 and "Warning" not in result.stderr, result.stderr[-2000:]
        said[launcher] = [line for line in result.stderr.splitlines() if "error:" in line]
        assert (tmp_path / launcher / "0" / "metrics.json").is_file()  # the other job ends well
    assert said["vectorized"] == said["basic"] and "DivergenceError: train/loss became inf" in said["basic"][0]


def test_only_seeds_and_optimizer_numbers_vary_within_a_group():
    from catbrain.compat.hydra import per_job_key

    assert all(per_job_key(k) for k in ("seed", "data.seed", "optimizer.lr", "optimizer.betas", "optimizer.eps"))
    # a choice the stacked optimizer makes once for the group, or a setting it does not have
    assert not any(per_job_key(k) for k in ("optimizer.nesterov", "optimizer.amsgrad", "data.n_train", "optimizer"))


def job_configs(tmp_path, count: int, *overrides: str) -> list:
    """``count`` jobs' configs, seeds 0 .. count - 1, each with its job number, as the launcher holds them."""
    from omegaconf import open_dict

    configs = []
    for seed in range(count):
        cfg = compose_config([*overrides, "plots=false", "logger=none", f"seed={seed}"], tmp_path / str(seed))
        with open_dict(cfg):
            cfg.hydra = {"job": {"num": seed}}
        configs.append(cfg)
    return configs


def test_a_group_builds_trains_and_tests_with_the_threads_a_run_alone_trains_with(tmp_path, monkeypatch):
    """threads=auto: one intra-op thread for small models (see run.trainer.threads) from the second job's build to
    each job's test, where a second thread only waits on a busy machine's other processes; torch's own after."""

    import catbrain.run.vectorized as stacked
    import catbrain.run.vectorized_outcome as outcome
    from catbrain.commands.vectorized import finish, train_groups

    seen: dict[str, list[int]] = {"build": [], "fit": [], "test": []}

    def recording(name, real):
        def call(*args, **kwargs):
            seen[name].append(torch.get_num_threads())
            return real(*args, **kwargs)

        return call

    for module, name, key in [(stacked, "build", "build"), (stacked, "fit_together", "fit"),
                              (outcome, "test_job", "test")]:  # fmt: skip
        monkeypatch.setattr(module, name, recording(key, getattr(module, name)))
    configs = job_configs(tmp_path, 3, "data.n_train=256", "data.n_val=64", "data.n_test=64", "trainer.max_epochs=2")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for part, jobs in train_groups([[0, 1, 2]], configs, max_jobs=64, memory_bytes=None):
            for position, job in zip(part, jobs):
                finish(job, configs[position], [f"seed={position}"])
        assert torch.get_num_threads() == 2  # given back
    finally:
        torch.set_num_threads(before)
    assert seen == {"build": [2, 1, 1], "fit": [1], "test": [1, 1, 1]}  # the first build decides: its model is small
    assert all((tmp_path / str(seed) / "metrics.json").is_file() for seed in range(3))


def test_a_split_group_is_trained_one_part_at_a_time(tmp_path, monkeypatch):
    """Each part is handed back (to be written and let go of) before the next is built: a kill keeps the parts
    written, and a group split for memory takes one part's memory."""

    import catbrain.run.vectorized as stacked
    from catbrain.commands.vectorized import train_groups

    events: list[str] = []
    real_build, real_fit = stacked.build, stacked.fit_together
    monkeypatch.setattr(stacked, "build", lambda cfg: events.append(f"build {cfg.seed}") or real_build(cfg))
    monkeypatch.setattr(stacked, "fit_together", lambda jobs, device: events.append("fit") or real_fit(jobs, device))
    configs = job_configs(tmp_path, 5, "data.n_train=128", "data.n_val=32", "data.n_test=32", "trainer.max_epochs=1")
    for part, jobs in train_groups([[0, 1, 2, 3, 4]], configs, max_jobs=2, memory_bytes=None):
        events.append(f"written {part}")
        assert [job.cfg.seed for job in jobs] == part and all(job.epochs == 1 for job in jobs)
    assert events == ["build 0", "build 1", "fit", "written [0, 1]", "build 2", "build 3", "fit", "written [2, 3]",
                      "build 4", "fit", "written [4]"]  # fmt: skip


def test_a_sweep_dir_holding_another_sweeps_jobs_is_refused_before_anything_trains(tmp_path):
    tiny = ["data.n_train=128", "data.n_val=32", "data.n_test=32", "trainer.max_epochs=1", "plots=false",
            "logger=none", "hydra/launcher=vectorized", "hydra.sweep.dir=shared"]  # fmt: skip
    first = run_cli("catbrain-train", "-m", *tiny, "optimizer.lr=0.01", "seed=0,1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    written = {p: p.read_bytes() for p in (tmp_path / "shared").rglob("*") if p.is_file()}
    other = run_cli("catbrain-train", "-m", *tiny, "optimizer.lr=0.3", "seed=0,1", cwd=tmp_path)
    assert other.returncode == 2 and "Traceback" not in other.stderr, other.stderr[-2000:]
    error = [line for line in other.stderr.splitlines() if "error:" in line]
    assert error == ["catbrain-train: error: hydra.sweep.dir=shared holds job 0 of another sweep (optimizer.lr=0.01 "
                     "where this one has optimizer.lr=0.3): give this sweep a hydra.sweep.dir of its own, or remove "
                     "that folder"]  # fmt: skip
    assert {p: p.read_bytes() for p in (tmp_path / "shared").rglob("*") if p.is_file()} == written  # multirun.yaml too
    again = run_cli("catbrain-train", "-m", *tiny, "optimizer.lr=0.01", "seed=0,1", cwd=tmp_path)  # the same: kept
    assert again.returncode == 0 and "2 jobs already finished in shared: kept" in again.stderr, again.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("callbacks", ["callbacks=none", "callbacks=early_stopping", "callbacks=model_checkpoint"])
def test_a_group_keeps_the_checkpoints_and_tests_the_weights_its_callbacks_say(callbacks, tmp_path):
    """No ModelCheckpoint: no best.ckpt and the last weights tested; no LastCheckpoint: no last.ckpt; as a run alone."""
    tiny = ["data.n_train=512", "data.n_val=128", "trainer.max_epochs=6", "optimizer.lr=0.3", "seed=0,1", callbacks,
            "plots=false", "logger=none"]  # fmt: skip
    runs = {}
    for launcher, result in with_both_launchers(tmp_path, *tiny).items():
        assert result.returncode == 0 and "runs alone" not in result.stderr, result.stderr[-3000:]
        runs[launcher] = [tmp_path / launcher / str(j) for j in range(2)]
    for alone, together in zip(runs["basic"], runs["vectorized"]):
        files = [{p.name for p in (run / "checkpoints").glob("*.ckpt")} for run in (alone, together)]
        assert files[0] == files[1], callbacks
        own, stacked = (json.loads((run / "metrics.json").read_text()) for run in (alone, together))
        for key, value in own.items():
            if "seconds" not in key and not isinstance(value, str):
                assert stacked[key] == pytest.approx(value, rel=1e-5, abs=1e-7), (callbacks, key)


@pytest.mark.slow
@pytest.mark.parametrize(("seeds", "started"), [("seed=0,1", "train together"), ("seed=0", "runs alone")])
def test_ctrl_c_ends_a_vectorized_sweep_in_one_line(seeds, started, tmp_path):
    """In a group's fit or in a job that runs alone (where Lightning turns Ctrl-C into an exit of its own)."""
    arguments = ["data.n_train=2048", "trainer.max_epochs=400", "callbacks=model_checkpoint", "plots=false",
                 "logger=none", "hydra/launcher=vectorized", seeds, "hydra.sweep.dir=stopped"]  # fmt: skip
    process = subprocess.Popen([str(BIN / "catbrain-train"), "-m", *arguments], cwd=tmp_path, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    said = []
    for line in process.stderr:
        said.append(line)
        if started in line:
            break
    time.sleep(1.5)  # into the fit
    process.send_signal(signal.SIGINT)
    said += process.stderr.readlines()
    assert process.wait(timeout=120) == 130, "".join(said)
    assert "Traceback" not in "".join(said) and "KeyboardInterrupt" not in "".join(said)
    jobs = len(seeds.split(","))
    assert said[-1] == (f"catbrain-train: interrupted: 0 of {jobs} jobs finished in stopped; run the same command "
                        "again to train the others (the finished ones are kept)\n")  # fmt: skip


def test_a_stopping_rule_of_any_name_stops_its_job(tmp_path):
    from catbrain.run.stopping import Stopping
    from catbrain.run.vectorized import build

    overrides = ["data.n_train=64", "~callbacks.early_stopping",
                 "+callbacks.stop={_target_: catbrain.run.stopping.Stopping, patience: 2}"]  # fmt: skip
    job = build(compose_config(overrides, tmp_path))
    assert isinstance(job.stopping, Stopping) and job.stopping.patience == 2


def test_the_optimizers_take_plain_betas_so_checkpoints_hold_no_omegaconf_object(tmp_path):
    """torch before 2.10 keeps ``betas`` as given in its param_groups, which a checkpoint pickles: a ListConfig there
    would make every checkpoint unreadable with weights_only=True."""
    from hydra.utils import instantiate

    for name in ("adam", "adamw"):
        partial = instantiate(compose_config([f"optimizer={name}"], tmp_path).optimizer)
        assert type(partial.keywords["betas"]) is list, name
