import pytest
import torch

from catbrain.models import MLP, Linear, ThresholdedLinear


def book_cat_brain(delta: float = 0.25) -> ThresholdedLinear:
    model = ThresholdedLinear(2, thresholds=(-delta, delta))
    with torch.no_grad():
        model.score_layer.weight.copy_(torch.tensor([[1.0, 1.0]]))
        model.score_layer.bias.fill_(-1.0)
    return model


def test_thresholded_decisions_at_and_around_the_thresholds():
    model = book_cat_brain(0.25)
    scores = torch.tensor([-1.0, -0.2501, -0.25, -0.2499, 0.0, 0.2499, 0.25, 0.2501, 1.0])
    # The ignore band is closed: exactly -delta and +delta are still "ignore".
    assert model.decide(scores).tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2]


def test_thresholded_linear_is_the_books_threat_score():
    model = book_cat_brain(0.25)
    objects = torch.tensor([[0.9, 0.8], [0.1, 0.2], [0.5, 0.5], [0.6, 0.6]])
    assert torch.allclose(model.score(objects), torch.tensor([0.7, -0.7, 0.0, 0.2]))
    decisions = [model.class_names[i] for i in model.decision(objects).tolist()]
    assert decisions == ["run_away", "approach", "ignore", "ignore"]
    assert model.weight.tolist() == [1.0, 1.0] and model.bias.item() == -1.0


def test_thresholded_linear_with_four_classes_sends_ties_to_the_middle():
    model = ThresholdedLinear(1, thresholds=(-1.0, 0.0, 1.0), class_names=("a", "b", "c", "d"))
    scores = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5])
    assert model.decide(scores).tolist() == [0, 1, 1, 2, 2, 2, 3]


@pytest.mark.parametrize(
    ("thresholds", "class_names", "message"),
    [
        ((0.25, -0.25), ("a", "b", "c"), "strictly increasing"),
        ((0.0, 0.0), ("a", "b", "c"), "strictly increasing"),
        ((-0.25, 0.25), ("a", "b"), "one more class than thresholds"),
    ],
)
def test_thresholded_linear_rejects_bad_thresholds(thresholds, class_names, message):
    with pytest.raises(ValueError, match=message):
        ThresholdedLinear(2, thresholds=thresholds, class_names=class_names)


def test_linear_regressor_and_classifier_shapes():
    x = torch.randn(7, 3)
    assert Linear(3, 1)(x).shape == (7,)
    assert Linear(3, 4)(x).shape == (7, 4)
    with pytest.raises(ValueError, match="in_features=0"):
        Linear(0, 1)


def test_mlp_shapes_and_bad_activation():
    x = torch.randn(5, 2)
    assert MLP(2, hidden=[8, 8], out_features=1)(x).shape == (5,)
    assert MLP(2, hidden=[8], out_features=3, activation="tanh")(x).shape == (5, 3)
    with pytest.raises(ValueError, match="activation='swishy'"):
        MLP(2, activation="swishy")


def test_mlp_fits_a_curve_a_line_cannot():
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 256).unsqueeze(-1)
    y = x.squeeze(-1) ** 2
    mlp, line = MLP(1, hidden=[16], activation="tanh"), Linear(1)
    for model in (mlp, line):
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(400):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
    mlp_loss = torch.nn.functional.mse_loss(mlp(x), y).item()
    line_loss = torch.nn.functional.mse_loss(line(x), y).item()
    assert mlp_loss < 0.1 * line_loss
