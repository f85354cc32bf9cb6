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
