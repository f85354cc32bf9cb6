"""Plug in your own model (README): a model class of your own trains, and its checkpoint loads wherever your
command names the class (a config on your search path, or ``trust_model=``), and nowhere else."""

from __future__ import annotations

import json
import sys

import pytest

from catbrain.commands import evaluate, predict
from catbrain.commands.train import train
from tests.conftest import compose_config
from tests.helpers import outcome

QUIET = ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false", "plots=false"]
TINY = ["data.n_train=256", "data.n_val=64", "data.n_test=128", "trainer.max_epochs=2"]


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    (root / "my_configs" / "model").mkdir(parents=True)
    (root / "my_configs" / "model" / "tiny.yaml").write_text(
        "_target_: tests.plugin_model.TinyScore\nin_features: ${len:${data.features}}\n"
    )
    searchpath = f"hydra.searchpath=[file://{root / 'my_configs'}]"
    command = ["experiment=weather_3pm", "model=tiny", *TINY, *QUIET]
    metrics = train(compose_config([*command, searchpath], root / "run"), overrides=[*command, searchpath])
    return root, searchpath, metrics


def test_your_model_trains_and_eval_finds_it_on_your_search_path(plugin_run, tmp_path, capsys, monkeypatch):
    root, searchpath, trained = plugin_run
    checkpoint = root / "run" / "checkpoints" / "best.ckpt"
    monkeypatch.chdir(tmp_path)
    argv = ["catbrain-eval", f"ckpt_path={checkpoint}", *QUIET, f"hydra.run.dir={tmp_path / 'eval'}"]
    monkeypatch.setattr(sys, "argv", [*argv, searchpath])
    code, _, err = outcome(lambda _: evaluate.main(), capsys, None)
    assert code in (0, None), err
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated["test/mse"] == pytest.approx(trained["test/mse"], rel=1e-5)

    monkeypatch.setattr(sys, "argv", argv)  # without your search path, the file alone cannot name the class
    code, _, err = outcome(lambda _: evaluate.main(), capsys, None)
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_predict_loads_your_model_only_when_you_name_it(plugin_run, capsys):
    root, _, _ = plugin_run
    arguments = [f"ckpt_path={root / 'run' / 'checkpoints' / 'best.ckpt'}", "input=[[15, 1013, 60, 0.5, -0.8]]"]
    code, _, err = outcome(predict.main, capsys, arguments)
    assert code == 2 and "'tests.plugin_model.TinyScore' is not one of catbrain's models" in err
    assert "trust_model=" in err
    code, out, err = outcome(predict.main, capsys, [*arguments, "trust_model=tests.plugin_model.TinyScore"])
    assert code in (0, None), err
    assert out.startswith("temp_today=15, ") and " -> " in out
