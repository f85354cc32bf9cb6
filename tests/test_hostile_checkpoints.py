"""A checkpoint is data: every hostile or tampered file in this corpus is refused in one line by predict, eval,
export and a resume, and no file outside the run changes."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

from catbrain.commands import evaluate, export, predict, train
from catbrain.commands.train import train as train_run
from tests.conftest import compose_config
from tests.helpers import outcome

TINY = ["data.n_train=256", "data.n_val=64", "data.n_test=64", "trainer.max_epochs=1"]
QUIET = ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false", "plots=false"]


def _set(path: tuple, value):
    def tamper(checkpoint: dict, victim: Path) -> None:
        node = checkpoint
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(victim) if callable(value) else value

    return tamper


def _model(cls: str, arguments):
    return _set(("catbrain", "model"), lambda victim: {"class": cls, "arguments": arguments(victim)})


def _old_format_model(spec):
    """A checkpoint written before models were stored by class: its config's model node is what names the model."""

    def tamper(checkpoint: dict, victim: Path) -> None:
        info = checkpoint["catbrain"]
        for key in ("model", "head", "format"):
            info.pop(key, None)
        info["config"]["model"] = spec(victim)

    return tamper


def _tensor(key: str, change):
    def tamper(checkpoint: dict, victim: Path) -> None:
        state = checkpoint["state_dict"]
        state[key] = change(state[key])

    return tamper


def _overrides(*overrides):
    return _set(("catbrain", "overrides"), lambda victim: [o.format(victim=victim) for o in overrides])


WEIGHT = "predictor.model.score_layer.weight"


def _laughs() -> list:
    """Ten million leaves from a few hundred bytes: one list shared ten times at each of seven levels."""
    node: list = [0.0] * 10
    for _ in range(6):
        node = [node] * 10
    return node


CORPUS = {
    "model builtins.open": (
        _model("builtins.open", lambda v: {"file": str(v), "mode": "w"}),
        "is not one of catbrain's models",
    ),
    "model Path.write_text": (
        _model("pathlib.Path.write_text", lambda v: {"self": str(v), "data": "owned"}),
        "is not one of catbrain's models",
    ),
    "old-format model open": (
        _old_format_model(lambda v: {"_target_": "builtins.open", "file": str(v), "mode": "w"}),
        "is not one of catbrain's models",
    ),
    "object spec in an argument": (
        _model(
            "catbrain.models.ThresholdedLinear",
            lambda v: {"in_features": 2, "thresholds": {"_target_": "builtins.open", "file": str(v), "mode": "w"}},
        ),
        "not object specs",
    ),
    "huge model": (_model("catbrain.models.MLP", lambda v: {"in_features": 2, "hidden": [10**9, 10**9]}), "refused"),
    "override hydra.run.dir": (_overrides("hydra.run.dir={victim.parent}"), "it stores the override"),
    "override log file": (
        _overrides("hydra.job_logging.handlers.file.filename={victim}"),
        "it stores the override",
    ),
    "override adds a target": (_overrides("+model._target_=builtins.open"), "it stores the override"),
    "override with an object spec": (
        _overrides("data.world={{_target_:builtins.open,file:{victim},mode:w}}"),
        "it stores the override",
    ),
    "override names a path": (_overrides("data.train_path={victim}"), "it stores the override"),
    "override escapes the config folder": (_overrides("experiment=../../../x"), "it stores the override"),
    "NaN weights": (_tensor(WEIGHT, lambda t: torch.full_like(t, float("nan"))), "NaN or infinite"),
    "zero input_std": (_tensor("predictor.input_std", torch.zeros_like), "must be at least"),
    "negative target_std": (_tensor("predictor.target_std", lambda t: -t), "must be at least"),
    "thresholds out of order": (
        _tensor("predictor.model.thresholds", lambda t: t.flip(0)),
        "not strictly increasing",
    ),
    "weights of another shape": (_tensor(WEIGHT, lambda t: torch.zeros(1, 3)), "shape"),
    "integer weights": (_tensor(WEIGHT, lambda t: t.long()), "the model needs torch.float32"),
    "an extra tensor": (_set(("state_dict", "predictor.model.extra"), torch.zeros(2)), "unexpected"),
    "unknown kind": (_set(("catbrain", "kind"), "evil"), "is not one of"),
    "interpolation in a feature name": (
        _set(("catbrain", "feature_names"), ["${oc.env:HOME}", "sharpness"]),
        "is not a name",
    ),
    "terminal escape codes in a class name": (
        _set(("catbrain", "head"), {"class_names": ["approach", "\x1b[2Jignore", "run_away"]}),
        "is not a name",
    ),
    "head arguments that are not a mapping": (_set(("catbrain", "head"), ["approach"]), "must be mappings"),
    "a mapping value that names a folder": (
        _overrides("callbacks.last_checkpoint={{dirpath:'{victim.parent}/elsewhere'}}"),
        "it stores the override",
    ),
    "no atomic checkpoint writer": (_overrides("trainer.plugins=[]"), "it stores the override"),
    "escape codes in a replayed name": (_overrides("name=\x1b[31mowned"), "it stores the override"),
    "too many overrides": (_overrides(*["data.n_train=64"] * 300), "at most 200"),
    "a vanishing input_std": (_tensor("predictor.input_std", lambda t: torch.full_like(t, 1e-45)), "at least"),
    "weights beyond float32": (
        _tensor(WEIGHT, lambda t: torch.full(t.shape, 1e300, dtype=torch.float64)),
        "NaN or infinite values (as torch.float32)",
    ),
    "sparse weights": (_tensor(WEIGHT, lambda t: t.to_sparse()), "not a dense tensor"),
    "shared references that multiply": (
        _set(("catbrain", "feature_ranges"), lambda v: {"hardness": _laughs()}),
        "values",
    ),
    "feature ranges of no feature": (_set(("catbrain", "feature_ranges"), {"other": [0, 1]}), "feature_ranges"),
    "not a catbrain checkpoint": (lambda checkpoint, victim: checkpoint.pop("catbrain"), "not a catbrain checkpoint"),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("hostile") / "run"
    train_run(compose_config([*TINY, *QUIET], run_dir))
    return run_dir


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


def _run(command: str, checkpoint: Path, tmp_path: Path, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    if command == "predict":
        code, _, err = outcome(predict.main, capsys, [f"ckpt_path={checkpoint}", "input=[[0.5, 0.5]]"])
    elif command == "export":
        code, _, err = outcome(export.main, capsys, [f"ckpt_path={checkpoint}", "format=torchscript"])
    else:
        main = evaluate.main if command == "eval" else train.main
        monkeypatch.setattr(sys, "argv", [f"catbrain-{command}", f"ckpt_path={checkpoint}", *QUIET])
        code, _, err = outcome(lambda _: main(), capsys, None)
    return code, err


@pytest.mark.parametrize("command", ["predict", "eval", "export", "train"])
@pytest.mark.parametrize("name", list(CORPUS))
def test_a_hostile_checkpoint_is_refused_in_one_line(trained, name, command, tmp_path, capsys, monkeypatch):
    tamper, message = CORPUS[name]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    hostile = copy.deepcopy(checkpoint)
    tamper(hostile, victim)
    folder = tmp_path / "run" / "checkpoints"  # a resume carries on in the checkpoint's own run directory
    folder.mkdir(parents=True)
    path = folder / "hostile.ckpt"
    torch.save(hostile, path)
    before = _files(tmp_path)

    code, err = _run(command, path, tmp_path, capsys, monkeypatch)

    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert message in err, err
    assert _files(tmp_path) == before  # nothing written, truncated or appended anywhere
    assert victim.read_text() == "precious"


def test_a_resume_refuses_callback_state_that_names_files_elsewhere(trained, tmp_path, capsys, monkeypatch):
    """ModelCheckpoint deletes the checkpoints it remembers as worse: a tampered memory must not reach it."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    for state in checkpoint["callbacks"].values():
        if "best_k_models" in state:
            state["best_k_models"] = {str(victim): torch.tensor(0.0)}
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(checkpoint, folder / "last.ckpt")
    code, err = _run("train", folder / "last.ckpt", tmp_path, capsys, monkeypatch)
    assert code == 2 and "remembers" in err and len(err.strip().splitlines()) == 1, err
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("command", ["predict", "export"])
def test_the_untampered_checkpoint_is_accepted(trained, command, tmp_path, capsys, monkeypatch):
    """The corpus's source passes, so each refusal above is the tampering's doing."""
    checkpoint = tmp_path / "good.ckpt"
    checkpoint.write_bytes((trained / "checkpoints" / "best.ckpt").read_bytes())
    code, err = _run(command, checkpoint, tmp_path, capsys, monkeypatch)
    assert code in (0, None), err


def test_a_model_of_your_own_loads_only_when_your_command_names_it(trained, tmp_path, capsys, monkeypatch):
    checkpoint = torch.load(trained / "checkpoints" / "best.ckpt", weights_only=True)
    state = checkpoint["state_dict"]
    checkpoint["catbrain"]["model"] = {"class": "tests.plugin_model.TinyScore", "arguments": {"in_features": 2}}
    checkpoint["catbrain"]["kind"], checkpoint["catbrain"]["head"] = "regression", {}
    checkpoint["state_dict"] = {
        "predictor.model.layer.weight": state[WEIGHT],
        "predictor.model.layer.bias": state["predictor.model.score_layer.bias"],
        **{key: value for key, value in state.items() if not key.startswith("predictor.model.")},
    }
    path = tmp_path / "plugin.ckpt"
    torch.save(checkpoint, path)
    code, _, err = outcome(predict.main, capsys, [f"ckpt_path={path}", "input=[[0.5, 0.5]]"])
    assert code == 2 and "trust_model=" in err
    code, out, err = outcome(
        predict.main, capsys, [f"ckpt_path={path}", "input=[[0.5, 0.5]]", "trust_model=tests.plugin_model.TinyScore"]
    )
    assert code in (0, None), err
    assert "->" in out


def _loops(checkpoint: dict, victim: Path) -> None:
    checkpoint["loops"]["fit_loop"]["epoch_progress"]["current"]["completed"] = -20


def _weight_decay(checkpoint: dict, victim: Path) -> None:
    checkpoint["optimizer_states"][0]["param_groups"][0]["weight_decay"] = -1e4


def _expanded(checkpoint: dict, victim: Path) -> None:
    for state in checkpoint["callbacks"].values():
        if "best_model_score" in state:
            state["best_model_score"] = torch.tensor([1.0]).expand(8000, 8000)


RESUME_CORPUS = {
    "nothing (the control: it resumes)": (lambda checkpoint, victim: None, None),
    "a loop at a negative epoch": (_loops, "not negative"),
    "a negative weight decay": (_weight_decay, "not negative"),
    "a tiny tensor expanded to millions in callback state": (_expanded, "holds a tensor of 64000000 values"),
    "a made-up Lightning version": (_set(("pytorch-lightning_version",), "garbage!"), "pytorch-lightning_version"),
    "words in the learning curves": (_set(("catbrain_history",), [{"val/loss": "low"}]), "catbrain_history"),
}


@pytest.mark.parametrize("name", list(RESUME_CORPUS))
def test_a_resume_refuses_state_a_run_would_not_write(trained, name, tmp_path, capsys, monkeypatch):
    """Lightning restores loops, optimizer and callback state as they are: each is checked before it can."""
    tamper, message = RESUME_CORPUS[name]
    checkpoint = torch.load(trained / "checkpoints" / "last.ckpt", weights_only=True)
    folder = tmp_path / "run" / "checkpoints"
    folder.mkdir(parents=True)
    for state in checkpoint["callbacks"].values():  # as if the run had been here: only the tampering is wrong
        for key in [key for key in state if key.endswith("_path") and state[key]]:
            state[key] = str(folder / Path(state[key]).name)
        if "best_k_models" in state:
            state["best_k_models"] = {str(folder / Path(k).name): v for k, v in state["best_k_models"].items()}
    tamper(checkpoint, tmp_path / "victim.txt")
    torch.save(checkpoint, folder / "last.ckpt")
    before = _files(tmp_path)
    code, err = _run("train", folder / "last.ckpt", tmp_path, capsys, monkeypatch)
    if message is None:
        assert code in (0, None), err
        return
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert _files(tmp_path) == before
