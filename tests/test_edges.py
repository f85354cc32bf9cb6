"""Every promise holds at the edges: each bad value is refused in one line before any work, and no run
directory is made. A new case is one line of a table."""

from __future__ import annotations

import pytest
import torch

from catbrain.commands.launcher import preflight
from catbrain.errors import ConfigError, UsageError
from tests.conftest import predict_in_process, run_cli

NO_GPU = not torch.cuda.is_available()

# (command line, words the one-line message holds)
BAD_VALUES = [
    ("data.n_train=1", "data.n_train=1: must be an integer >= 2 (a standard deviation and r2 need two rows)"),
    ("data.n_val=1", "data.n_val=1: must be an integer >= 2"),
    ("data.n_test=1", "data.n_test=1: must be an integer >= 2"),
    ("trainer.val_check_interval=0", "trainer.val_check_interval=0: must be an integer >= 1 (optimizer steps) or"),
    ("trainer.val_check_interval=1.5", "trainer.val_check_interval=1.5: must be an integer >= 1"),
    ("trainer.check_val_every_n_epoch=0", "trainer.check_val_every_n_epoch=0: must be an integer >= 1"),
    ("scheduler=cosine scheduler.T_max=0", "scheduler.T_max=0: must be an integer >= 1"),
    ("seed=99999999999999999999", "seed=99999999999999999999: must be an integer from 0 to 4294967295"),
    ("seed=-1", "seed=-1: must be an integer from 0 to 4294967295"),
    ("data.seed=-1", "data.seed=-1: must be an integer from 0 to 4294967295"),
    ("optimizer.weight_decay=-1", "optimizer.weight_decay=-1: must be a finite number >= 0"),
    ("optimizer=sgd optimizer.momentum=-0.5", "optimizer.momentum=-0.5: must be a finite number >= 0"),
    ("optimizer.eps=-1", "optimizer.eps=-1: torch.optim.Adam refuses it (Invalid epsilon value: -1"),
    ("optimizer.betas=[2,3]", "optimizer.betas=[2, 3]: torch.optim.Adam refuses it (Invalid beta parameter"),
    ("optimizer=sgd optimizer.nesterov=true optimizer.momentum=0", "optimizer.nesterov=True: torch.optim.SGD"),
    ("data.world.teacher_bias=inf", "data.world.teacher_bias=inf: must be a finite number within +-1e+09"),
    ("data.world.teacher_weights=[nan,1]", "data.world.teacher_weights[0]=nan: must be a finite number"),
    ("data.world.noise_std=1e30", "data.world.noise_std=1e+30: must be a finite number within +-1e+09"),
    ("'data.shift={noise_std:-inf}'", "data.shift.noise_std=-inf: must be a finite number"),
    ("trainer.devices=0", "trainer.devices=0: must be auto, -1 (every device), an integer >= 1"),
    ("trainer.devices=[]", "trainer.devices=[]: must be auto"),
    ("trainer.precision=banana", "trainer.precision='banana': must be one of ['32-true'"),
    ("trainer.accelerator=tpu", "trainer.accelerator='tpu': must be one of ['auto', 'cpu', 'gpu', 'cuda', 'mps']"),
    ("trainer.max_steps=-5", "trainer.max_steps=-5: must be -1 (no limit) or an integer >= 1"),
    ("trainer.max_steps=0", "trainer.max_steps=0: must be -1 (no limit) or an integer >= 1"),
    ("trainer.log_every_n_steps=-1", "trainer.log_every_n_steps=-1: must be an integer >= 1"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0: must be an integer >= 1"),
    ("callbacks.model_checkpoint.save_top_k=-5", "save_top_k=-5: must be -1 (no limit) or an integer >= 0"),
    ("callbacks.last_checkpoint.every_n_train_steps=0", "last_checkpoint.every_n_train_steps=0: must be an integer"),
    ("callbacks.early_stopping.patience=-1", "callbacks.early_stopping.patience=-1: must be an integer >= 1"),
    ("scheduler=plateau scheduler.factor=2", "scheduler.factor=2: must be a number in (0, 1)"),
    ("scheduler=plateau scheduler.factor=0", "scheduler.factor=0: must be a number in (0, 1)"),
    ("scheduler=plateau scheduler.patience=-1", "scheduler.patience=-1: must be an integer >= 0"),
    ("plots=maybe", "plots='maybe': must be true or false"),
    ("threads=0", "threads=0: must be auto or a positive integer"),
    ("hydra.run.dir=/proc/nope", "hydra.run.dir=/proc/nope: no directory can be made in /proc"),
    pytest.param(
        "trainer=gpu",
        "trainer.accelerator=gpu: torch sees no GPU here",
        marks=pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU"),
    ),  # fmt: skip
]


@pytest.mark.parametrize(("line", "expected"), BAD_VALUES, ids=[str(case[0]) for case in BAD_VALUES])
def test_a_bad_value_is_named_before_any_work(line, expected, tmp_path, monkeypatch):
    import shlex

    monkeypatch.chdir(tmp_path)
    with pytest.raises((ConfigError, UsageError)) as raised:
        preflight("train", shlex.split(line))
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # no run directory, nothing else


def test_a_file_in_the_way_of_the_run_directory_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").write_text("not a folder")
    with pytest.raises(UsageError, match="outputs is a file, not a directory"):
        preflight("train", [])  # the default run directory, outputs/train/<time>


def test_a_file_where_a_sweep_jobs_folder_goes_is_named_before_any_job_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "1").write_text("not a folder")
    with pytest.raises(UsageError, match="sweep/1 is a file where job 1's folder goes"):
        preflight("train", ["-m", "seed=0,1", "hydra.sweep.dir=sweep"])
    preflight("train", ["-m", "seed=0", "hydra.sweep.dir=sweep"])  # job 0 alone: its folder is free
    preflight("train", ["-m", "seed=0,1", "hydra.sweep.dir=sweep", "hydra.sweep.subdir=s${hydra.job.num}"])


def test_the_shipped_experiments_pass_every_rule(tmp_path, monkeypatch):
    from catbrain.config import config_dir

    monkeypatch.chdir(tmp_path)
    for experiment in sorted(p.stem for p in (__import__("pathlib").Path(config_dir()) / "experiment").glob("*.yaml")):
        preflight("train", [f"experiment={experiment}"])


@pytest.mark.parametrize(
    "line", ["trainer.max_steps=0", "scheduler=cosine scheduler.T_max=0", "hydra.run.dir=/proc/nope/run"]
)
def test_from_the_command_line_a_bad_value_exits_2_in_one_line_and_makes_no_directory(line, tmp_path):
    result = run_cli("catbrain-train", *line.split(), cwd=tmp_path)
    assert result.returncode == 2
    (message,) = result.stderr.strip().splitlines()
    assert message.startswith("catbrain-train: error: ") and line.split()[-1].split("=")[0] in message
    assert list(tmp_path.iterdir()) == []


def _table(rows: int, columns: dict) -> str:
    """A CSV: ``columns`` maps each name to a function of the row number."""
    lines = [",".join(columns)] + [",".join(str(make(i)) for make in columns.values()) for i in range(rows)]
    return "\n".join(lines) + "\n"


GOOD = {"a": lambda i: (i * 7919) % 101 / 10, "b": lambda i: (i * 104729) % 97 / 10, "y": lambda i: i % 13}
LABELS = {"a": GOOD["a"], "b": GOOD["b"], "kind": lambda i: ["cat", "dog", "eel"][i % 3]}

# (the file, the overrides after data=csv data.path=<file>, words the one-line message holds)
BAD_TABLES = [
    (_table(50, {**GOOD, "b": lambda i: 5}), ["data.features=[a,b]", "data.target=y"],
     "column 'b' holds one value (5) in all 30 training rows"),
    (_table(50, GOOD), ["data.features=[a,a]", "data.target=y"], "data.features=['a', 'a']: names a more than once"),
    (_table(3, GOOD), ["data.features=[a,b]", "data.target=y"], "split of"),
    (_table(50, {**GOOD, "y": lambda i: "3.3e38" if i == 7 else i}), ["data.features=[a,b]", "data.target=y"],
     "line 9, column y: '3.3e38' is too large to train on"),
    (_table(50, {**LABELS, "kind": lambda i: "cat"}), ["data.features=[a,b]", "data.target=kind",
     "data.task=classification"], "hold one label ('cat'); a classifier needs two or more"),
    (_table(3000, {**LABELS, "kind": lambda i: f"id{i}"}), ["data.features=[a,b]", "data.target=kind",
     "data.task=classification"], "has 3000 distinct labels (at most 100 classes)"),
    (_table(50, LABELS), ["data.features=[a,b]", "data.target=kind", "data.task=classification",
     "data.class_names=[cat,dog,cat]"], "data.class_names=['cat', 'dog', 'cat']: names cat more than once"),
    (_table(50, {**LABELS, "kind": lambda i: i / 7}), ["data.features=[a,b]", "data.target=kind",
     "data.task=classification"], "holds numbers such as"),
    (_table(50, {**LABELS, "kind": lambda i: "yes/no" if i % 2 else "maybe"}), ["data.features=[a,b]",
     "data.target=kind", "data.task=classification"], "has the label 'yes/no': a class name may not hold '/'"),
    (_table(50, GOOD), ["data.features=[a,b]", "data.target=z"], "has no column z"),
    (_table(50, {**GOOD, "a": lambda i: "x" if i == 4 else i}), ["data.features=[a,b]", "data.target=y"],
     "line 6, column a: 'x' is not a number"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "overrides", "expected"), BAD_TABLES, ids=[c[2][:40] for c in BAD_TABLES])
def test_a_bad_table_is_named_before_the_run_directory(text, overrides, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(text)
    with pytest.raises(UsageError) as raised:
        preflight("train", ["data=csv", "data.path=t.csv", "model=linear", *overrides])
    assert expected in str(raised.value) and "\n" not in str(raised.value)
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_training_needs_training_rows_not_only_a_test_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(_table(50, GOOD))
    line = ["data=csv", "data.test_path=t.csv", "data.features=[a,b]", "data.target=y", "model=linear"]
    with pytest.raises(UsageError, match="catbrain-train needs training rows: data.path=..."):
        preflight("train", line)
    result = run_cli("catbrain-train", *line, cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_a_table_is_read_once_by_the_check_and_the_run(tmp_path, monkeypatch):
    """The pre-flight reads and checks the file; the run takes what it read, unless the file changed."""
    from catbrain.data import csv as csv_data

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.csv").write_text(_table(50, GOOD))
    reads = []
    original = csv_data.read_columns
    monkeypatch.setattr(csv_data, "read_columns", lambda *a, **k: reads.append(a[0]) or original(*a, **k))
    preflight("train", ["data=csv", "data.path=t.csv", "data.features=[a,b]", "data.target=y", "model=linear"])
    data = csv_data.CsvDataModule(["a", "b"], "y", path="t.csv")
    assert reads == ["t.csv"] and len(data.splits["train"]["features"]) == 30


def test_collinear_features_still_have_a_least_squares_answer(tmp_path):
    from catbrain.commands.train import train
    from tests.conftest import compose_config

    (tmp_path / "t.csv").write_text(_table(60, {**GOOD, "c": lambda i: 2 * GOOD["a"](i)}))
    overrides = ["data=csv", f"data.path={tmp_path / 't.csv'}", "data.features=[a,b,c]", "data.target=y",
                 "model=linear", "optimizer=closed_form", "logger=none", "plots=false",
                 "callbacks=[model_checkpoint,early_stopping]", "trainer.enable_progress_bar=false"]  # fmt: skip
    metrics = train(compose_config(overrides, tmp_path / "run"))
    assert metrics["stopped"] == "solved" and (tmp_path / "run" / "metrics.json").is_file()


def test_a_nearly_full_disk_is_named_before_the_run_directory(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    monkeypatch.chdir(tmp_path)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 4096, 4096))
    with pytest.raises(UsageError, match=r"the run directory \(under outputs\): 0.0 MiB free on the disk of"):
        preflight("train", [])
    assert list(tmp_path.iterdir()) == []


def _disk_full(*args, **kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("export_format", ["torchscript", "onnx"])
def test_export_on_a_full_disk_is_one_line_and_leaves_no_file(export_format, tmp_path, monkeypatch):
    """torch's own C++ writer aborted the interpreter on a full disk; catbrain writes through Python."""
    from pathlib import Path

    from catbrain.commands.export import main
    from catbrain.commands.train import train
    from tests.conftest import compose_config

    if export_format == "onnx":
        pytest.importorskip("onnx", reason="the export extra brings onnx")
    small = ["trainer.max_epochs=1", "data.n_train=200", "logger=none", "plots=false", "callbacks=model_checkpoint"]
    train(compose_config([*small, "trainer.enable_progress_bar=false"], tmp_path / "run"))
    out = tmp_path / "exported"
    out.mkdir()
    monkeypatch.setattr(Path, "write_bytes", _disk_full)
    with pytest.raises(SystemExit) as exited:
        main([f"ckpt_path={tmp_path / 'run/checkpoints/best.ckpt'}", f"format={export_format}", f"out={out / 'm'}"])
    assert exited.value.code == 1
    assert list(out.iterdir()) == []


def test_data_on_a_full_disk_is_one_line_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    import csv

    from catbrain.commands.data import main

    class FullWriter:
        def __init__(self, *args, **kwargs):
            pass

        writerow = writerows = staticmethod(_disk_full)

    monkeypatch.setattr(csv, "writer", FullWriter)
    with pytest.raises(SystemExit) as exited:
        main([f"out={tmp_path / 'data'}", "data.n_train=50", "data.n_val=10", "data.n_test=10"])
    assert exited.value.code != 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "No space left on device" in line and "train.csv" in line
    assert list((tmp_path / "data").iterdir()) == []


@pytest.fixture
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint


def test_an_integer_of_thousands_of_digits_is_a_number_named_in_its_row(checkpoint, capsys):
    code, out, err = predict_in_process(checkpoint, ["input=[[1" + "0" * 5000 + ", 0.5]]"], capsys)
    assert code == 2 and err.strip().splitlines() == [err.strip()] and "input row 1, hardness" in err


def test_a_csv_field_beyond_the_csv_limit_is_named_by_its_line(checkpoint, capsys, tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("hardness,sharpness\n0.5,0.5\n0.1," + "9" * 200_000 + "\n")
    code, out, err = predict_in_process(checkpoint, [f"input_path={path}"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "line 3: not a CSV row" in err


def test_a_byte_order_mark_on_standard_input_is_taken_as_from_a_file(checkpoint, capsys, monkeypatch):
    import io
    import json

    monkeypatch.setattr("sys.stdin", io.StringIO("\ufeffhardness,sharpness\n0.9,0.8\n"))
    code, out, err = predict_in_process(checkpoint, ["input_path=-", "format=json"], capsys)
    assert code == 0, err
    assert json.loads(out)[0]["prediction"] in ("approach", "ignore", "run_away")


def test_an_existing_file_is_replaced_only_when_asked(checkpoint, capsys, tmp_path):
    """catbrain-data, catbrain-export and catbrain-predict's output_path refuse to replace a file silently."""
    from catbrain.commands.data import main as write_data
    from catbrain.commands.export import main as export

    def outcome(command, arguments):
        try:
            command(arguments)
        except SystemExit as exited:
            return exited.code, capsys.readouterr().err
        return 0, capsys.readouterr().err

    small = ["data.n_train=20", "data.n_val=5", "data.n_test=5"]
    assert outcome(write_data, [f"out={tmp_path / 'd'}", *small])[0] == 0
    before = (tmp_path / "d" / "train.csv").read_text()
    code, err = outcome(write_data, [f"out={tmp_path / 'd'}", *small, "seed=3"])
    assert code == 2 and "train.csv" in err and "exists; give overwrite=true to replace it" in err
    assert (tmp_path / "d" / "train.csv").read_text() == before
    assert outcome(write_data, [f"out={tmp_path / 'd'}", *small, "seed=3", "overwrite=true"])[0] == 0
    assert (tmp_path / "d" / "train.csv").read_text() != before

    (tmp_path / "m.pt").write_text("mine")
    code, err = outcome(export, [f"ckpt_path={checkpoint}", "format=torchscript", f"out={tmp_path / 'm.pt'}"])
    assert code == 2 and "exists; give overwrite=true" in err and (tmp_path / "m.pt").read_text() == "mine"
    code, err = outcome(export, [f"ckpt_path={checkpoint}", "format=torchscript", f"out={tmp_path / 'm.pt'}",
                                 "overwrite=maybe"])  # fmt: skip
    assert code == 2 and "overwrite='maybe': must be true or false" in err

    (tmp_path / "a.csv").write_text("mine")
    code, out, err = predict_in_process(checkpoint, ["input=[[0.5, 0.5]]", f"output_path={tmp_path / 'a.csv'}"], capsys)
    assert code == 2 and "output_path" in err and (tmp_path / "a.csv").read_text() == "mine"
