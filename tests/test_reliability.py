"""A run finishes or fails loudly with its last good state kept; a resumed run ends where an uninterrupted one would."""

import json
import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from catbrain.commands.train import train
from catbrain.predictor import read_checkpoint as load_checkpoint
from catbrain.run import checkpoint_io
from catbrain.validation import ConfigError, validate
from tests.conftest import BIN, compose_config, run_cli

REPO = Path(__file__).resolve().parents[1]
SMALL = ["experiment=weather_3pm", "data.n_train=640", "data.n_val=128", "data.n_test=256", "data.batch_size=64",
         "trainer.log_every_n_steps=5"]  # fmt: skip


def run_with_test_callbacks(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [str(BIN / "catbrain-train"), *arguments], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


# 1. Config validation before any work ------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=-0.1"], "optimizer.lr=-0.1: must be a number > 0"),
        (["optimizer.lr=0"], "optimizer.lr=0: must be a number > 0"),
        (["data.batch_size=0"], "data.batch_size=0: must be a positive integer"),
        (["data.n_train=-5"], "data.n_train=-5: must be an integer >= 2"),
        (["data.n_train=many"], "data.n_train='many': must be an integer >= 2"),
        (["data.world.delta=-0.25"], "data.world.delta=-0.25: must be a number >= 0"),
        (["model.thresholds=[0.5,-0.5]"], "model.thresholds=[0.5, -0.5]: must be strictly increasing"),
        (["model.thresholds=[0.1,0.1]"], "must be strictly increasing"),
        (["model.in_features=3"], "model.in_features=3: must equal the 2 data.features"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0: must be a positive integer"),
        (["+model.hidden_size=4"], "unexpected keyword argument 'hidden_size'"),
        (["experiment=weather_3pm", "data.val_fraction=2"], None),  # not a key of the weather data: compose fails
    ],
)
def test_bad_values_are_named_before_any_work(overrides, message, tmp_path):
    if message is None:
        with pytest.raises(Exception, match="val_fraction"):
            compose_config(overrides, tmp_path)
        return
    with pytest.raises(ConfigError) as error:
        validate(compose_config(overrides, tmp_path))
    assert message in str(error.value)


def test_every_shipped_experiment_validates(tmp_path):
    for experiment in ("cat_threat", "cat_softmax", "weather_3pm"):
        validate(compose_config([f"experiment={experiment}"], tmp_path))


@pytest.mark.parametrize(
    "override", ["optimizer.lr=-1", "data.batch_size=0", "model.thresholds=[0.3,-0.3]", "optimizer=rmsprop"]
)
def test_a_bad_config_writes_nothing(override, tmp_path):
    result = run_cli("catbrain-train", override, "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and override.split("=")[0] in result.stderr
    assert not (tmp_path / "run").exists()


# 2. Divergence -----------------------------------------------------------------------------------
def test_divergence_stops_at_once_and_keeps_the_last_good_checkpoint(tmp_path):
    result = run_with_test_callbacks(
        *SMALL, "trainer.max_epochs=5", "callbacks=model_checkpoint",
        "callbacks.last_checkpoint.every_n_train_steps=5",
        "+callbacks.poison._target_=tests.helpers.PoisonBatchAt", "+callbacks.poison.step=12",
        "hydra.run.dir=run", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "DivergenceError" in line and "at step 12 (epoch 1, batch 2)" in line
    last = load_checkpoint(tmp_path / "run/checkpoints/last.ckpt")
    assert last["global_step"] == 10
    assert all(torch.isfinite(value).all() for value in last["state_dict"].values())
    assert not (tmp_path / "run/metrics.json").exists()
    predicted = run_cli("catbrain-predict", "ckpt_path=run/checkpoints/last.ckpt", "input=[[10, 1013, 60, 0, 1]]",
                        "format=json", cwd=tmp_path)  # fmt: skip
    assert predicted.returncode == 0 and -50 < json.loads(predicted.stdout)[0]["prediction"] < 50


def test_an_exploding_learning_rate_is_caught(tmp_path):
    result = run_cli("catbrain-train", "optimizer=sgd", "optimizer.lr=1e6", "hydra.run.dir=run", cwd=tmp_path)
    assert result.returncode == 1
    assert "DivergenceError: train/loss became" in result.stderr and "optimizer.lr" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# 3. Crash and resume -----------------------------------------------------------------------------
@pytest.mark.parametrize(("steps_per_call", "saved_at"), [(1, 12), (4, 14)])
def test_a_run_killed_mid_epoch_resumes_to_the_same_result_bit_for_bit(tmp_path, steps_per_call, saved_at):
    # 10 batches an epoch; with 4 steps per call the calls end at steps 4, 8, 10, 14, 18, 20, ...
    common = [*SMALL, "trainer.max_epochs=3", "callbacks=model_checkpoint", f"task.steps_per_call={steps_per_call}",
              "callbacks.last_checkpoint.every_n_train_steps=4", "logger=none"]  # fmt: skip
    full = run_with_test_callbacks(*common, "hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr

    killer = ["+callbacks.kill._target_=tests.helpers.KillOnce", "+callbacks.kill.step=14",
              f"+callbacks.kill.marker={tmp_path / 'killed'}"]  # fmt: skip
    crashed = run_with_test_callbacks(*common, *killer, "hydra.run.dir=crashed", cwd=tmp_path)
    assert crashed.returncode == -9 and (tmp_path / "killed").exists()
    interrupted = load_checkpoint(tmp_path / "crashed/checkpoints/last.ckpt")
    assert interrupted["global_step"] == saved_at and interrupted["epoch"] == 1  # mid-epoch

    resumed = run_with_test_callbacks("ckpt_path=crashed/checkpoints/last.ckpt", "hydra.run.dir=resumed", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    full_last = load_checkpoint(tmp_path / "full/checkpoints/last.ckpt")
    resumed_last = load_checkpoint(tmp_path / "resumed/checkpoints/last.ckpt")
    assert full_last["global_step"] == resumed_last["global_step"] == 30
    assert full_last["state_dict"].keys() == resumed_last["state_dict"].keys()
    assert all(torch.equal(full_last["state_dict"][k], resumed_last["state_dict"][k]) for k in full_last["state_dict"])
    full_metrics = json.loads((tmp_path / "full/metrics.json").read_text())
    resumed_metrics = json.loads((tmp_path / "resumed/metrics.json").read_text())
    for key in full_metrics:
        if key.startswith(("test/", "weight/", "bias", "steps", "epochs")):
            assert resumed_metrics[key] == full_metrics[key], key


def test_checkpoints_are_replaced_atomically(tmp_path, monkeypatch):
    io = checkpoint_io.AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)

    def crash_midway(obj, file, *args, **kwargs):
        Path(file).write_bytes(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_io.torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert torch.equal(torch.load(path, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# 4. Determinism ----------------------------------------------------------------------------------
def test_same_seed_same_weights_and_metrics_other_seed_other_result(tmp_path, quiet_run):
    def run(seed: int, name: str) -> tuple[dict, dict]:
        run_dir = tmp_path / name
        metrics = train(compose_config([*SMALL, "trainer.max_epochs=2", f"seed={seed}", *quiet_run], run_dir))
        state = load_checkpoint(run_dir / "checkpoints/last.ckpt")["state_dict"]
        return {k: v for k, v in metrics.items() if not k.endswith("_seconds")}, state

    first, again, other = run(1, "first"), run(1, "again"), run(2, "other")
    assert first[0] == again[0]
    assert all(torch.equal(first[1][key], again[1][key]) for key in first[1])
    assert first[0]["test/mse"] != other[0]["test/mse"]
    assert not torch.equal(first[1]["predictor.model.layer.weight"], other[1]["predictor.model.layer.weight"])


# 5. Untrusted files ------------------------------------------------------------------------------
class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("command", ["catbrain-predict", "catbrain-eval", "catbrain-train"])
def test_a_checkpoint_that_runs_code_on_load_is_refused(command, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"catbrain": {"overrides": []}, "state_dict": {}, "payload": Exploit(marker)}, evil)
    with pytest.raises(pickle.UnpicklingError):  # the payload does run under plain pickle
        torch.load(evil, weights_only=True)
    arguments = [f"ckpt_path={evil}"] + (["input=[[0.5, 0.5]]"] if command == "catbrain-predict" else [])
    result = run_cli(command, *arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert "was refused: it holds more than weights" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_prediction_input_is_never_evaluated(tmp_path):
    from catbrain.commands.predict import rows_from_json
    from catbrain.errors import UsageError

    marker = tmp_path / "pwned"
    for text in [f"__import__('pathlib').Path('{marker}').touch()", f"[[open('{marker}', 'w'), 1]]"]:
        with pytest.raises(UsageError):
            rows_from_json(text, ["hardness", "sharpness"])
    assert not marker.exists()


# 7. Concurrent runs ------------------------------------------------------------------------------
def test_runs_started_together_keep_their_own_directories(tmp_path):
    tiny = ["data.n_train=128", "data.n_val=32", "data.n_test=32", "trainer.max_epochs=1", "logger=none"]
    processes = [
        subprocess.Popen(
            [str(BIN / "catbrain-train"), *tiny, f"seed={seed}"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for seed in range(3)
    ]
    for process in processes:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    run_dirs = sorted(p for p in (tmp_path / "outputs/train").iterdir() if p.name != "latest")
    assert len(run_dirs) == 3 and (tmp_path / "outputs/train/latest").resolve() in run_dirs
    seeds = {OmegaConf.load(d / "config.yaml").seed for d in run_dirs}
    assert seeds == {0, 1, 2}
    assert all((d / "metrics.json").is_file() and (d / "checkpoints/best.ckpt").is_file() for d in run_dirs)


def test_files_written_atomically_get_the_usual_permissions(tmp_path, quiet_run):
    from catbrain.commands.train import train

    previous = os.umask(0o022)
    try:
        train(compose_config(["data.n_train=256", "trainer.max_epochs=1", *quiet_run], tmp_path))
    finally:
        os.umask(previous)
    for name in ("metrics.json", "config.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name  # not mkstemp's owner-only 0o600


def test_ctrl_c_then_resume_tests_the_same_best_checkpoint_as_an_uninterrupted_run(tmp_path):
    """The last.ckpt of an epoch holds that epoch's best-checkpoint tracking (ModelCheckpoint updates it at the
    end of the epoch, and last.ckpt is saved after it): a resume after Ctrl-C tests what the full run tests."""
    common = [*SMALL, "trainer.max_epochs=4", "callbacks=model_checkpoint", "logger=none", "plots=false"]
    full = run_with_test_callbacks(*common, "hydra.run.dir=full", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    stop = ["+callbacks.stop._target_=tests.helpers.InterruptAt", "+callbacks.stop.epoch=1",
            f"+callbacks.stop.marker={tmp_path / 'stopped'}"]  # fmt: skip
    cut = run_with_test_callbacks(*common, *stop, "hydra.run.dir=cut", cwd=tmp_path)
    assert cut.returncode == 130, cut.stderr
    state = load_checkpoint(tmp_path / "cut/checkpoints/last.ckpt")
    (tracking,) = [value for key, value in state["callbacks"].items() if key.startswith("ModelCheckpoint")]
    epoch_0 = [entry["val/loss"] for entry in state["catbrain_history"] if "val/loss" in entry]
    assert state["epoch"] == 0 and float(tracking["best_model_score"]) == pytest.approx(epoch_0[-1])
    resumed = run_with_test_callbacks("ckpt_path=cut/checkpoints/last.ckpt", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    full_metrics = json.loads((tmp_path / "full/metrics.json").read_text())
    resumed_metrics = json.loads((tmp_path / "cut/metrics.json").read_text())
    for key in full_metrics:
        if key.startswith(("test/", "val/", "weight/", "bias", "steps", "epochs")):
            assert resumed_metrics[key] == full_metrics[key], key


def test_ctrl_c_says_where_training_stopped_and_how_to_resume(tmp_path):
    import signal
    import time

    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [str(BIN / "catbrain-train"), "trainer.max_epochs=100000", "callbacks=model_checkpoint", "data.n_train=256",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("catbrain-train: interrupted at epoch ")
    assert f"resume with: catbrain-train ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}" in last
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] >= 0
