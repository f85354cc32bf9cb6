"""bf16 mixed precision (Lightning's autocast, here on CPU): the steps go through Lightning, the model still learns,
and its float32 checkpoint predicts."""

import json
from pathlib import Path

import pytorch_lightning as pl
import torch

from catbrain.commands.train import train
from catbrain.predictor import load_predictor
from tests.conftest import compose_config

SMALL = ["data.n_train=1024", "data.n_val=256", "data.n_test=1024", "trainer.max_epochs=8", "trainer=cpu",
         "callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false"]  # fmt: skip


class PrecisionProbe(pl.Callback):
    """Write how the run trained: its precision, whether it stepped the optimizer directly, its forward's dtype."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer, pl_module) -> None:
        with trainer.precision_plugin.forward_context():  # the context Lightning runs each training forward in
            output = pl_module(torch.rand(4, pl_module.model.in_features))
        record = {"precision": trainer.precision, "direct_steps": pl_module._direct_steps, "dtype": str(output.dtype)}
        self.path.write_text(json.dumps(record))


def probed(tmp_path: Path, name: str, *overrides: str) -> tuple[dict, dict]:
    probe = [f"+callbacks.probe._target_={__name__}.PrecisionProbe", f"+callbacks.probe.path={tmp_path}/{name}.json"]
    metrics = train(compose_config([*SMALL, *probe, *overrides], tmp_path / name))
    return metrics, json.loads((tmp_path / f"{name}.json").read_text())


def test_bf16_mixed_takes_lightnings_steps_learns_and_its_checkpoint_predicts(tmp_path):
    full, full_probe = probed(tmp_path, "full")
    mixed, mixed_probe = probed(tmp_path, "bf16", "trainer.precision=bf16-mixed")

    assert full_probe == {"precision": "32-true", "direct_steps": True, "dtype": "torch.float32"}
    assert mixed_probe == {"precision": "bf16-mixed", "direct_steps": False, "dtype": "torch.bfloat16"}
    # Near the Bayes-optimal score and the full-precision run, yet not the same numbers: bf16 did the arithmetic.
    assert mixed["test/mse"] < 1.5 * mixed["test/bayes_mse"]
    assert abs(mixed["test/mse"] - full["test/mse"]) < 0.1 * full["test/mse"]
    assert mixed["test/decision_acc"] > 0.85
    assert mixed["weight/hardness"] != full["weight/hardness"]

    predictor = load_predictor(tmp_path / "bf16/checkpoints/best.ckpt")
    assert all(p.dtype == torch.float32 for p in predictor.parameters())
    results = predictor.predict([[0.9, 0.8], [0.1, 0.2]])
    assert [r["prediction"] for r in results] == ["run_away", "approach"]
