"""Every kind of output works with every command: train, eval on a world and on CSV, predict as text and JSON.

(Export of every kind, in both formats, is proven against predict in ``test_export.py``.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from catbrain.commands import data as export_data
from catbrain.commands import evaluate, predict
from catbrain.commands.train import train
from catbrain.predictor import load_predictor
from tests.conftest import compose_config
from tests.helpers import outcome

TINY = ["data.n_train=512", "data.n_val=128", "data.n_test=256", "trainer.max_epochs=2"]
QUIET = ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false", "plots=false"]
KINDS = {
    "regression": (["experiment=weather_3pm"], "mse"),
    "threshold": (["experiment=cat_threat"], "decision_acc"),
    "classification": (["experiment=cat_softmax"], "acc"),
    "ordinal": (["experiment=cat_ordinal"], "acc"),
    "quantile": (["experiment=weather_3pm_quantiles"], "pinball_loss"),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, tuple[Path, dict, Path]]:
    """kind -> (run directory, its metrics, a folder with the world's splits as CSV)."""
    root = tmp_path_factory.mktemp("kinds")
    made = {}
    for kind, (overrides, _) in KINDS.items():
        command = [*overrides, *TINY, *QUIET]
        metrics = train(compose_config(command, root / kind), overrides=command)  # stored for eval to replay
        export_data.main([*overrides, *TINY, f"out={root / f'{kind}_csv'}"])
        made[kind] = (root / kind, metrics, root / f"{kind}_csv")
    return made


def _eval(monkeypatch, capsys, tmp_path, *overrides: str) -> tuple[int, str]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["catbrain-eval", *overrides, *QUIET, f"hydra.run.dir={tmp_path / 'eval'}"])
    code, _, err = outcome(lambda _: evaluate.main(), capsys, None)
    return code, err


@pytest.mark.parametrize("kind", list(KINDS))
def test_train_then_eval_on_the_world_gives_the_same_metric(runs, kind, tmp_path, capsys, monkeypatch):
    run_dir, trained, _ = runs[kind]
    metric = f"test/{KINDS[kind][1]}"
    code, err = _eval(monkeypatch, capsys, tmp_path, f"ckpt_path={run_dir / 'checkpoints/best.ckpt'}")
    assert code in (0, None), err
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert evaluated[metric] == pytest.approx(trained[metric], rel=1e-5)


@pytest.mark.parametrize("kind", list(KINDS))
def test_eval_on_csv_reads_the_columns_the_model_was_trained_on(runs, kind, tmp_path, capsys, monkeypatch):
    run_dir, _, csv_dir = runs[kind]
    checkpoint = run_dir / "checkpoints/best.ckpt"
    code, err = _eval(
        monkeypatch, capsys, tmp_path, f"ckpt_path={checkpoint}", "data=csv", f"data.test_path={csv_dir / 'test.csv'}"
    )
    assert code in (0, None), err
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert f"test/{KINDS[kind][1]}" in evaluated
    assert not any(key.startswith("test/bayes_") for key in evaluated)  # a file has no known Bayes-optimal answer


@pytest.mark.parametrize("kind", list(KINDS))
def test_predict_answers_in_text_and_json_alike(runs, kind, capsys):
    run_dir, _, _ = runs[kind]
    checkpoint = run_dir / "checkpoints/best.ckpt"
    predictor = load_predictor(checkpoint)
    rows = [[float(i) / 4 + value for i, value in enumerate(predictor.input_mean.tolist())]]
    arguments = [f"ckpt_path={checkpoint}", f"input={json.dumps(rows)}"]
    code, text, err = outcome(predict.main, capsys, arguments)
    assert code in (0, None), err
    code, out, err = outcome(predict.main, capsys, [*arguments, "format=json"])
    assert code in (0, None), err
    [answer] = json.loads(out)
    assert answer == predictor.predict(rows)[0]
    shown = answer["prediction"] if isinstance(answer["prediction"], str) else f"{answer['prediction']:.4f}"
    assert shown in text
    if kind == "quantile":
        assert list(answer["quantiles"]) == ["0.1", "0.5", "0.9"]
        assert answer["quantiles"]["0.1"] <= answer["prediction"] <= answer["quantiles"]["0.9"]
        assert f"temp_tomorrow = {answer['prediction']:.4f} (80%: " in text
    if kind in ("classification",):
        assert sum(answer["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    if kind in ("threshold", "ordinal"):
        assert set(answer["margins"]) == {"approach|ignore", "ignore|run_away"}
