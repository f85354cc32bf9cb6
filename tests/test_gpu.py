"""On a CUDA GPU: full precision and bf16 mixed precision train, and their checkpoints predict on the CPU.

Skipped where no CUDA device is present (CI has none); run ``python -m pytest tests/test_gpu.py`` on a GPU machine.
"""

import pytest
import torch

from catbrain.commands.train import train
from catbrain.predictor import load_predictor
from tests.conftest import compose_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
QUIET = ["callbacks=model_checkpoint", "logger=none", "trainer.enable_progress_bar=false"]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_the_cat_brain_trains_on_the_gpu(tmp_path, precision):
    if precision == "bf16-mixed" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    metrics = train(compose_config(["trainer=gpu", f"trainer.precision={precision}", *QUIET], tmp_path))
    assert metrics["test/mse"] < 1.2 * metrics["test/bayes_mse"]
    assert metrics["weight/hardness"] == pytest.approx(1.0, abs=0.05)
    predictor = load_predictor(tmp_path / "checkpoints" / "best.ckpt")  # loads onto the CPU
    assert [r["prediction"] for r in predictor.predict([[0.9, 0.8], [0.1, 0.2]])] == [
        "run_away",
        "approach",
    ]


def test_an_mlp_regressor_trains_on_the_gpu_in_bf16(tmp_path):
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    overrides = ["experiment=lion_mlp", "trainer=gpu", "trainer.precision=bf16-mixed", "trainer.max_epochs=10", *QUIET]
    metrics = train(compose_config(overrides, tmp_path))
    assert metrics["test/mse"] < 2 * metrics["test/bayes_mse"]


@pytest.mark.parametrize("experiment", ["cat_threat", "weather_3pm_quantiles", "cat_nonlinear_mlp"])
def test_a_vectorized_sweep_on_the_gpu_ends_as_the_basic_one(tmp_path, experiment):
    import json

    from tests.conftest import run_cli

    common = ["-m", f"experiment={experiment}", "trainer=gpu", "data.n_train=2048", "trainer.max_epochs=3",
              "plots=false", "logger=none", "optimizer.lr=0.01,0.05", "seed=0,1"]  # fmt: skip
    for launcher in ("basic", "vectorized"):
        result = run_cli("catbrain-train", *common, f"hydra/launcher={launcher}", f"hydra.sweep.dir={launcher}",
                         cwd=tmp_path)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    for job in range(4):
        basic = json.loads((tmp_path / "basic" / str(job) / "metrics.json").read_text())
        stacked = json.loads((tmp_path / "vectorized" / str(job) / "metrics.json").read_text())
        assert stacked["epochs"] == basic["epochs"]
        assert stacked["test/loss"] == pytest.approx(basic["test/loss"], rel=1e-3)  # GPU kernels differ in rounding
