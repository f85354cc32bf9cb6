import math

import pytest
import torch

from catbrain.models import ThresholdedLinear
from catbrain.worlds import CatWorld, WeatherWorld


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("world", [CatWorld(), WeatherWorld()], ids=["cat", "weather"])
def test_same_seed_same_data_other_seed_other_data(world):
    first, again, other = (world.sample(500, generator(s)) for s in (1, 1, 2))
    for key in first:
        assert torch.equal(first[key], again[key])
    assert not torch.equal(first["features"], other["features"])


def test_noiseless_uniform_cat_class_frequencies_are_exact():
    # score = h + s - 1 with h, s uniform is triangular on [-1, 1]: P(score < -delta) = (1 - delta)^2 / 2.
    delta, n = 0.25, 400_000
    decisions = CatWorld(delta=delta, noise_std=0.0).sample(n, generator(0))["decision"]
    expected = [(1 - delta) ** 2 / 2, 1 - (1 - delta) ** 2, (1 - delta) ** 2 / 2]
    observed = torch.bincount(decisions, minlength=3).double() / n
    for p, q in zip(expected, observed.tolist()):
        assert abs(q - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_noisy_uniform_cat_class_frequencies_match_the_integral():
    # With noise, P(approach) = integral of (1 - |s|) * Phi((-delta - s) / sigma) over s in [-1, 1].
    delta, sigma, n = 0.25, 0.2, 400_000
    s = torch.linspace(-1, 1, 200_001, dtype=torch.float64)
    density = 1 - s.abs()
    p_approach = torch.trapezoid(density * torch.special.ndtr((-delta - s) / sigma), s).item()
    p_run_away = torch.trapezoid(density * torch.special.ndtr((s - delta) / sigma), s).item()
    decisions = CatWorld(delta=delta, noise_std=sigma).sample(n, generator(3))["decision"]
    observed = (torch.bincount(decisions, minlength=3).double() / n).tolist()
    for p, q in zip([p_approach, 1 - p_approach - p_run_away, p_run_away], observed):
        assert abs(q - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_skew_favours_hard_sharp_objects():
    features = CatWorld(skew=(3.0, 1.0)).sample(200_000, generator(0))["features"]
    # u ** (1 / k) has mean k / (k + 1).
    assert features[:, 0].mean().item() == pytest.approx(0.75, abs=0.005)
    assert features[:, 1].mean().item() == pytest.approx(0.5, abs=0.005)


def test_cat_world_decides_like_the_thresholded_linear_model():
    world = CatWorld(delta=0.3)
    model = ThresholdedLinear(2, thresholds=(-0.3, 0.3))
    scores = torch.tensor([-0.5, -0.3, 0.0, 0.3, 0.5, -0.30001, 0.30001])
    assert torch.equal(world.decide(scores), model.decide(scores))


def test_bayes_decision_is_the_most_probable_and_beats_any_other_rule():
    world = CatWorld(noise_std=0.3)
    sample = world.sample(200_000, generator(5))
    bayes = (sample["bayes_decision"] == sample["decision"]).float().mean()
    thresholded_clean = (world.decide(sample["bayes_score"]) == sample["decision"]).float().mean()
    assert bayes >= thresholded_clean - 0.002
    assert torch.allclose(world.class_probabilities(sample["features"]).sum(-1), torch.ones(200_000))


@pytest.mark.parametrize("bad", [{"delta": -0.1}, {"noise_std": -1.0}, {"skew": (0.0, 1.0)}, {"teacher_weights": (1,)}])
def test_cat_world_rejects_bad_parameters(bad):
    with pytest.raises(ValueError):
        CatWorld(**bad)


def test_weather_best_prediction_is_linear_in_the_features():
    world = WeatherWorld()
    sample = world.sample(100_000, generator(0))
    weights, bias = world.teacher()
    teacher = sample["features"].double() @ weights.double() + bias
    assert (teacher - sample["bayes_temp_tomorrow"].double()).abs().max().item() < 1e-3
    noise = sample["temp_tomorrow"] - sample["bayes_temp_tomorrow"]
    assert noise.var().item() == pytest.approx(world.noise_std**2, rel=0.03)


def test_weather_day_range_restricts_the_season():
    winter = WeatherWorld(day_range=(0, 59)).sample(20_000, generator(0))
    summer = WeatherWorld(day_range=(170, 230)).sample(20_000, generator(0))
    assert winter["features"][:, 0].mean() + 10 < summer["features"][:, 0].mean()
    with pytest.raises(ValueError, match="day_range"):
        WeatherWorld(day_range=(100, 50))


def test_the_cat_draws_only_the_targets_a_run_keeps_and_the_same_rows():
    everything = CatWorld().sample(1000, generator(5), truth=True)
    scores = CatWorld().sample(1000, generator(5), truth=True, targets=("score",))
    assert set(scores) == {"features", "score", "bayes_score"}  # no decisions: 8 bytes a row saved
    for key in scores:
        assert torch.equal(scores[key], everything[key])


def test_a_run_keeps_only_its_targets_from_a_world(tmp_path):
    from catbrain.data import WorldDataModule

    data = WorldDataModule(CatWorld(), ["score"], ["hardness", "sharpness"], n_train=50, n_val=10, n_test=10)
    data.setup()
    assert set(data.splits["train"]) == {"features", "score"}
    assert set(data.splits["test"]) == {"features", "score", "bayes_score"}
