"""Stopping that suits the problem: gradient descent lands on the optimum of a convex problem, and every run
says why it stopped."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from catbrain.commands.train import train
from catbrain.errors import CheckpointError, ConfigError
from catbrain.run.stopping import Stopping
from tests.conftest import compose_config

QUIET = ["callbacks=[model_checkpoint,early_stopping]", "logger=none", "trainer.enable_progress_bar=false"]
QUIET += ["plots=false"]


def _fifteen_objects(path, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The book's table: 15 objects, threat = hardness + sharpness - 1 (plus a little noise here)."""
    generator = torch.Generator().manual_seed(seed)
    objects = torch.rand(15, 2, generator=generator)
    threat = objects.sum(1) - 1 + 0.05 * torch.randn(15, generator=generator)
    path.write_text(
        "hardness,sharpness,threat\n"
        + "".join(f"{h!r},{s!r},{t!r}\n" for (h, s), t in zip(objects.tolist(), threat.tolist()))
    )
    design = torch.cat([objects.double(), torch.ones(15, 1, dtype=torch.float64)], dim=1)
    return objects, torch.linalg.lstsq(design, threat.double().unsqueeze(1), driver="gelsd").solution.squeeze(1)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradient_descent_given_enough_epochs_lands_on_least_squares(seed, tmp_path):
    """The README's own-data recipe with 2000 epochs and no other key: Adam's jitter no longer stops it short."""
    path = tmp_path / "objects.csv"
    _, expected = _fifteen_objects(path, seed)
    overrides = [
        "experiment=weather_3pm", "data=csv", f"data.train_path={path}", f"data.test_path={path}",
        "data.val_fraction=0", "trainer.max_epochs=2000", "data.features=[hardness,sharpness]", "data.target=threat",
        f"seed={seed}", *QUIET,
    ]  # fmt: skip
    metrics = train(compose_config(overrides, tmp_path / "run"))
    learned = [metrics["weight/hardness"], metrics["weight/sharpness"], metrics["bias"]]
    assert learned == pytest.approx(expected.tolist(), abs=1e-3)
    assert metrics["stopped"] == "converged" and metrics["epochs"] < 2000
    written = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert written["stopped"] == "converged" and "changed by less than" in written["stopped_reason"]


def test_a_run_that_uses_its_epochs_says_so(tmp_path, capsys):
    metrics = train(compose_config(["experiment=weather_3pm", "trainer.max_epochs=2", *QUIET], tmp_path))
    assert metrics["stopped"] == "max_epochs" and metrics["stopped_reason"] == "trainer.max_epochs=2 reached"
    assert "stopped: epochs used up after 2 epochs (trainer.max_epochs=2 reached)" in capsys.readouterr().out
    assert "Stopped: epochs used up after 2 epochs" in (tmp_path / "report.md").read_text()


def test_the_closed_form_says_it_solved(tmp_path):
    metrics = train(compose_config(["experiment=weather_3pm", "optimizer=closed_form", *QUIET], tmp_path))
    assert metrics["stopped"] == "solved"


class _Trainer(SimpleNamespace):
    """What :class:`Stopping` reads of a trainer: one validation at a time."""

    def __init__(self, scheduled: bool = False) -> None:
        weight = torch.nn.Parameter(torch.zeros(1))
        super().__init__(
            sanity_checking=False, fast_dev_run=False, callback_metrics={}, current_epoch=0, should_stop=False,
            optimizers=[torch.optim.SGD([weight], lr=1.0)], lr_scheduler_configs=[object()] if scheduled else [],
        )  # fmt: skip

    @property
    def lr(self) -> float:
        return self.optimizers[0].param_groups[0]["lr"]


def _validate(stopping: Stopping, trainer: _Trainer, values) -> list[float]:
    """Feed ``values`` as successive val/loss; the learning rate after each, until training stops."""
    rates = []
    for epoch, value in enumerate(values):
        trainer.current_epoch, trainer.callback_metrics = epoch, {"val/loss": torch.tensor(value)}
        stopping.on_validation_end(trainer, None)
        rates.append(trainer.lr)
        if trainer.should_stop:
            break
    return rates


def test_a_plateau_lowers_the_learning_rate_before_stopping():
    stopping, trainer = Stopping(patience=2, lr_factor=0.5, lr_reductions=2), _Trainer()
    rates = _validate(stopping, trainer, [4.0, 3.0, 2.0, 1.0] + [1.0] * 20)
    # Window means 3.5, 1.5, 1 improve; then 1, 1: halve; 1: halve again; 1: stop, flat.
    assert rates == [1.0] * 7 + [0.5] * 2 + [0.25] * 3
    assert trainer.should_stop and stopping.reason == "converged"
    assert "lowered 2 times" in stopping.sentence


def test_a_rising_validation_loss_stops_with_no_improvement():
    stopping, trainer = Stopping(patience=2, lr_reductions=1), _Trainer()
    _validate(stopping, trainer, [3.0, 2.0, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5])
    assert trainer.should_stop and stopping.reason == "no_improvement"
    assert "best 1 at epoch 2" in stopping.sentence


def test_improvements_below_the_relative_tolerance_count_as_a_plateau():
    stopping, trainer = Stopping(patience=1, rel_tol=1e-3, lr_reductions=0), _Trainer()
    _validate(stopping, trainer, [1000.0, 999.5, 999.0])
    assert trainer.should_stop and stopping.reason == "converged"


def test_a_scheduler_owns_the_learning_rate():
    stopping, trainer = Stopping(patience=1), _Trainer(scheduled=True)
    assert _validate(stopping, trainer, [1.0, 1.0]) == [1.0, 1.0]
    assert trainer.should_stop


def test_stopping_resumes_where_it_was():
    stopping, trainer = Stopping(patience=3, lr_reductions=2), _Trainer()
    _validate(stopping, trainer, [5.0, 4.0, 3.0] + [3.0] * 7)  # means 4, 3, 3: lowered once; one value pending
    resumed = Stopping(patience=3, lr_reductions=2)
    resumed.load_state_dict(stopping.state_dict())
    assert resumed.state_dict() == stopping.state_dict()
    assert resumed.reductions == 1 and resumed.window == [3.0]


@pytest.mark.parametrize(
    "state",
    [
        {"previous": "soon", "window": []},
        {"previous": 1.0, "window": [1.0] * 50},
        {"previous": 1.0, "window": [], "reductions": 99},
        {"previous": 1.0, "window": [], "reductions": -1},
        {"previous": 1.0, "window": "abc"},
    ],
)
def test_a_tampered_stopping_state_is_refused(state):
    with pytest.raises(CheckpointError, match="stopping state"):
        Stopping(patience=3, lr_reductions=2).load_state_dict(state)


@pytest.mark.parametrize(
    "override, message",
    [
        ("callbacks.early_stopping.patience=0", "patience=0: must be an integer >= 1"),
        ("callbacks.early_stopping.patience=-1", "patience=-1: must be an integer >= 1"),
        ("callbacks.early_stopping.lr_factor=2", "lr_factor=2: must be a number between 0 and 1"),
        ("callbacks.early_stopping.lr_factor=0", "lr_factor=0: must be a number between 0 and 1"),
        ("callbacks.early_stopping.rel_tol=-1e-3", "rel_tol=-0.001: must be a finite number >= 0"),
        ("callbacks.early_stopping.mode=up", "mode='up': must be min or max"),
        ("callbacks.early_stopping.lr_reductions=-1", "lr_reductions=-1: must be an integer >= 0"),
    ],
)
def test_bad_stopping_settings_are_named_before_any_work(override, message, tmp_path):
    from catbrain.validation import validate

    with pytest.raises(ConfigError, match=f"callbacks.early_stopping.{message}"):
        validate(compose_config([override], tmp_path))
