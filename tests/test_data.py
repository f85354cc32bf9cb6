import pytest
import torch

from catbrain.data import IndexBatchSampler, WorldDataModule, loading
from catbrain.worlds import CatWorld, WeatherWorld


def cat_data(**overrides) -> WorldDataModule:
    arguments = dict(
        world=CatWorld(),
        targets=["score", "decision"],
        features=["hardness", "sharpness"],
        class_names=["approach", "ignore", "run_away"],
        n_train=300,
        n_val=100,
        n_test=200,
        seed=7,
        batch_size=32,
    )
    datamodule = WorldDataModule(**{**arguments, **overrides})
    datamodule.setup("fit")
    return datamodule


def test_split_sizes_and_batches():
    datamodule = cat_data()
    assert {split: len(d["features"]) for split, d in datamodule.splits.items()} == {
        "train": 300,
        "val": 100,
        "test": 200,
    }
    batches = list(datamodule.train_dataloader())
    assert len(batches) == len(datamodule.train_dataloader()) == 10
    features, score, decision = batches[0]
    assert features.shape == (32, 2) and score.shape == (32,) and decision.dtype == torch.long
    assert sum(len(b[0]) for b in batches) == 300


def test_splits_are_disjoint_and_reproducible():
    first, again, other = cat_data(), cat_data(), cat_data(seed=8)
    train, test = first.splits["train"]["features"], first.splits["test"]["features"]
    assert not (train.unsqueeze(1) == test.unsqueeze(0)).all(-1).any()
    for split in ("train", "val", "test"):
        assert torch.equal(first.splits[split]["features"], again.splits[split]["features"])
        assert not torch.equal(first.splits[split]["features"], other.splits[split]["features"])


def test_more_test_data_leaves_the_training_data_alone():
    assert torch.equal(cat_data().splits["train"]["score"], cat_data(n_test=5000).splits["train"]["score"])


def test_validation_and_test_batches_keep_order():
    datamodule = cat_data()
    features = torch.cat([batch[0] for batch in datamodule.test_dataloader()])
    assert torch.equal(features, datamodule.splits["test"]["features"])


def test_standardisation_is_fitted_on_the_training_split():
    datamodule = WorldDataModule(
        world=WeatherWorld(), targets=["temp_tomorrow"], features=list(WeatherWorld.feature_names),
        n_train=2000, n_val=10, n_test=10, seed=0, batch_size=64, standardize=True,
    )  # fmt: skip
    datamodule.setup("fit")
    train = datamodule.splits["train"]["features"]
    assert torch.allclose(datamodule.input_mean, train.mean(0)) and torch.allclose(datamodule.input_std, train.std(0))


def test_reference_metrics_are_the_bayes_predictors_scores():
    datamodule = cat_data(n_test=50_000)
    references = datamodule.reference_metrics("test")
    assert references["test/bayes_mse"] == pytest.approx(0.1**2, rel=0.05)
    assert set(references) == {"test/bayes_mse", "test/bayes_mae", "test/bayes_r2", "test/bayes_decision_acc"}
    assert 0.85 < references["test/bayes_decision_acc"] < 0.92


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"n_train": 0}, "data.n_train must be a positive integer, got 0"),
        ({"batch_size": -4}, "data.batch_size must be a positive integer, got -4"),
        ({"features": ["a", "b", "c"]}, "data.features"),
        ({"class_names": ["yes", "no"]}, "data.class_names"),
    ],
)
def test_bad_arguments_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        cat_data(**overrides)


def test_unknown_target_is_named():
    with pytest.raises(ValueError, match=r"data.targets=\['temperature'\]"):
        cat_data(targets=["temperature"])


def test_sampler_visits_every_row_once_and_reshuffles_each_epoch():
    sampler = IndexBatchSampler(103, 10, shuffle=True, seed=0)
    first = torch.cat(list(sampler))
    sampler.set_epoch(1)
    second = torch.cat(list(sampler))
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(103))
    assert not torch.equal(first, second)
    sampler.set_epoch(0)
    assert torch.equal(torch.cat(list(sampler)), first)


def test_sampler_shards_disjointly_across_processes(monkeypatch):
    single = list(IndexBatchSampler(100, 20, seed=3))
    shards = []
    for rank in range(2):
        monkeypatch.setattr(loading, "_distributed_rank_and_size", lambda rank=rank: (rank, 2))
        shards.append(list(IndexBatchSampler(100, 10, seed=3)))
    assert len(shards[0]) == len(shards[1]) == len(single) == 5
    for global_batch, part0, part1 in zip(single, *shards):
        # Together the two processes take exactly the single process's batch, without overlap.
        assert torch.equal(torch.cat([part0, part1]), global_batch)


@pytest.mark.parametrize("features", [["sharpness", "hardness"], ["hardness"], ["hardness", "softness"]])
def test_features_must_name_the_worlds_columns_in_order(features):
    """A swapped pair would train and predict with every column mislabelled."""
    with pytest.raises(ValueError, match=r"must name the world's features \['hardness', 'sharpness'\], in order"):
        cat_data(features=features)
