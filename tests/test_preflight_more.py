"""Bad input that used to pass the pre-flight: a resume from weights only, checkpoints torch cannot read, sweeps of
no jobs, and the vectorized launcher's settings. Each is one line, exit 2, and leaves every file as it was."""

from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path

import pytest
import torch

from catbrain.commands import predict, train
from catbrain.errors import CheckpointError
from catbrain.predictor.checkpoint import read_checkpoint
from tests.conftest import run_cli
from tests.helpers import outcome

TINY = ["data.n_train=64", "data.n_val=16", "data.n_test=16", "trainer.max_epochs=1", "plots=false", "logger=none"]
# What a hydra/launcher=vectorized job's checkpoint holds (catbrain/run/vectorized_outcome.py write_checkpoint).
WEIGHTS_ONLY = ("epoch", "global_step", "pytorch-lightning_version", "state_dict", "catbrain", "catbrain_history")


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _train(arguments: list[str], tmp_path: Path, capsys, monkeypatch) -> tuple[int, str]:
    """``catbrain-train <arguments>`` in this process, from ``tmp_path``: exit code and stderr."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.setattr(sys, "argv", ["catbrain-train", *arguments])
    code, _, err = outcome(lambda _: train.main(), capsys, None)
    return code, err


def test_a_resume_from_a_checkpoint_of_weights_only_is_refused_before_it_writes(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    full = torch.load(tiny_checkpoint, weights_only=True)
    job = tmp_path / "sweep" / "0"  # a vectorized sweep's job: its config and checkpoints
    (job / "checkpoints").mkdir(parents=True)
    (job / ".hydra").mkdir()
    (job / "config.yaml").write_text("the job's own config\n")
    (job / ".hydra" / "config.yaml").write_text("the job's own hydra config\n")
    checkpoint = job / "checkpoints" / "last.ckpt"
    torch.save({key: value for key, value in full.items() if key in WEIGHTS_ONLY}, checkpoint)
    before = _files(tmp_path)

    code, err = _train([f"ckpt_path={checkpoint}", "trainer.max_epochs=20"], tmp_path, capsys, monkeypatch)

    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"catbrain-train: error: ckpt_path='{checkpoint}' was refused: it holds the model's weights")
    assert "cannot resume" in line and "catbrain-eval" in line and "catbrain-predict" in line
    assert "catbrain-export" in line and "KeyError" not in line
    assert _files(tmp_path) == before and not (job / "csv").exists()
    # The same file answers: it is refused as a resume, not as a checkpoint.
    code, out, err = outcome(predict.main, capsys, [f"ckpt_path={checkpoint}", "input=[[0.5, 0.5]]"])
    assert code == 0 and "->" in out, err


def test_a_full_checkpoint_still_passes_the_resume_preflight(tiny_checkpoint, tmp_path, monkeypatch):
    from catbrain.commands.launcher import preflight

    monkeypatch.chdir(tmp_path)
    injected = preflight("train", [f"ckpt_path={tiny_checkpoint}", "trainer.max_epochs=3"])
    assert any(o.startswith("hydra.run.dir=") for o in injected)


def _unreadable_files(tmp_path: Path, good: bytes) -> dict[str, str]:
    """Files torch refuses, and what the one line must end with."""
    (tmp_path / "pickle.ckpt").write_bytes(pickle.dumps({"rows": [1, 2], "when": "now"}, protocol=4))
    (tmp_path / "truncated.ckpt").write_bytes(good[:1000])  # cut before the zip's central directory
    return {"pickle.ckpt": "UnpicklingError: Unsupported operand 149)", "truncated.ckpt": "central directory)"}


@pytest.mark.parametrize("command", ["catbrain-predict", "catbrain-eval"])
def test_a_checkpoint_torch_cannot_read_is_one_whole_line(command, tiny_checkpoint, tmp_path):
    """No torch warning before the line, and torch's message ends where its first sentence does, not cut off."""
    files = _unreadable_files(tmp_path, Path(tiny_checkpoint).read_bytes())
    for name, ending in files.items():
        arguments = [f"ckpt_path={name}"] + (["input=[[0.5, 0.5]]"] if command == "catbrain-predict" else [])
        result = run_cli(command, *arguments, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"{command}: error: ckpt_path='{name}' is not a readable checkpoint (corrupt, truncated or not a torch "
            f"file: {result.stderr.split('torch file: ', 1)[-1].strip()}"
        ]
        assert result.stderr.strip().endswith(ending), result.stderr
        assert "Warning" not in result.stderr and "If you are seeing" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)


def test_reading_an_unusual_pickle_warns_nothing(tiny_checkpoint, tmp_path):
    _unreadable_files(tmp_path, Path(tiny_checkpoint).read_bytes())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            read_checkpoint(tmp_path / "pickle.ckpt")
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        ("seed=range(0)", "seed=range(0): gives no values, so the sweep has no jobs"),
        ("seed=range(5,2)", "seed=range(5,2): gives no values, so the sweep has no jobs"),
        ("seed=range(0,3,0)", "seed=range(0,3,0): range() arg 3 must not be zero; range(start, stop, step) needs a"),
        ("seed=range(0,1,0.0)", "seed=range(0,1,0.0): Invalid range values (start:0, stop:1, step:0); range("),
    ],
    ids=["range(0)", "range(5,2)", "range(0,3,0)", "range(0,1,0.0)"],
)
@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=vectorized"]], ids=["basic", "vectorized"])
def test_a_sweep_of_no_jobs_or_a_bad_range_is_one_line(sweep, message, launcher, tmp_path, capsys, monkeypatch):
    code, err = _train(["-m", *launcher, sweep, "hydra.sweep.dir=sweep", *TINY], tmp_path, capsys, monkeypatch)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    assert line.startswith(f"catbrain-train: error: {message}"), line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("setting", "allowed"),
    [
        ("max_jobs_per_group=0", "must be a positive integer"),
        ("max_jobs_per_group=-3", "must be a positive integer"),
        ("max_jobs_per_group=1.5", "must be a positive integer"),
        ("max_jobs_per_group=true", "must be a positive integer"),
        ("memory_bytes=abc", "must be null or a positive integer of bytes"),
        ("memory_bytes=-5", "must be null or a positive integer of bytes"),
        ("memory_bytes=0", "must be null or a positive integer of bytes"),
        ("memory_bytes=1.5", "must be null or a positive integer of bytes"),
    ],
    ids=lambda value: value if "=" in value else "",
)
def test_the_vectorized_launchers_settings_are_checked(setting, allowed, tmp_path, capsys, monkeypatch):
    arguments = ["-m", "hydra/launcher=vectorized", f"hydra.launcher.{setting}", "seed=0,1", "hydra.sweep.dir=sweep"]
    code, err = _train([*arguments, *TINY], tmp_path, capsys, monkeypatch)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    key, value = setting.split("=")
    shown = {"abc": "'abc'", "true": "True"}.get(value, value)
    assert line.startswith(f"catbrain-train: error: hydra.launcher.{key}={shown}: {allowed}"), line
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


SOUND = [
    [],
    ["hydra.launcher.max_jobs_per_group=1", "hydra.launcher.memory_bytes=null"],
    ["hydra.launcher.memory_bytes=8"],
    ["hydra.launcher.memory_bytes=8e9"],  # whole bytes, as people write them
]


@pytest.mark.parametrize("settings", SOUND)
def test_sound_vectorized_launcher_settings_pass_the_preflight(settings, tmp_path, monkeypatch):
    from catbrain.commands.launcher import preflight

    monkeypatch.chdir(tmp_path)
    preflight("train", ["-m", "hydra/launcher=vectorized", *settings, "seed=0,1", "hydra.sweep.dir=sweep", *TINY])
    assert list(tmp_path.iterdir()) == []


def test_a_checkpoint_that_added_a_key_the_configs_now_have_is_still_replayed(tmp_path, monkeypatch):
    """An earlier run's stored ``+optimizer.eps=...`` (the key was not in the configs then): eval and a resume replay
    it as ``++``, add or set, not as an append Hydra refuses now that optimizer.eps is listed."""
    from catbrain.commands.launcher import preflight
    from catbrain.commands.train import train as train_run
    from tests.conftest import compose_config

    run_dir = tmp_path / "run"
    train_run(compose_config([*TINY, "callbacks=model_checkpoint", "trainer.enable_progress_bar=false"], run_dir))
    path = run_dir / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["catbrain"]["overrides"] = ["+optimizer.eps=1e-06"]
    torch.save(checkpoint, path)
    monkeypatch.chdir(tmp_path)
    assert "++optimizer.eps=1e-06" in preflight("eval", [f"ckpt_path={path}"])


def test_two_of_hydras_modes_are_one_line_not_a_traceback(tmp_path, monkeypatch):
    from catbrain.commands.launcher import preflight
    from catbrain.errors import UsageError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match="--multirun and --cfg: give only one of --run, --multirun, --cfg, --info"):
        preflight("train", ["--cfg", "job", "-m", "seed=0,1"])


def test_a_glob_sweep_of_a_groups_options_is_expanded_and_checked_before_any_job(tmp_path, monkeypatch):
    from catbrain.commands.launcher import preflight, sweep_jobs
    from catbrain.errors import UsageError

    assert sweep_jobs(["optimizer=glob(ad*)", "seed=0,1"]) == [
        ["optimizer=adam", "seed=0"], ["optimizer=adam", "seed=1"], ["optimizer=adamw", "seed=0"],
        ["optimizer=adamw", "seed=1"],
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=r"seed=glob\(\*\): gives no values"):
        preflight("train", ["-m", "seed=glob(*)"])
