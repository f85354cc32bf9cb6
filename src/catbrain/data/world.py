"""A DataModule that draws train, val and test splits from a synthetic world."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from catbrain.data.base import InMemoryDataModule

SPLITS = ("train", "val", "test")


class WorldDataModule(InMemoryDataModule):
    """Train / val / test splits drawn from ``world``; batches are ``(features, *targets)``.

    With ``standardize`` the mean and standard deviation of the training features (and of a
    numeric first target) are offered to the task, which applies them inside the model.

    The splits come from independent generators derived from ``seed``, so changing ``n_test``
    does not change the training data. Each split lives on the training device from the start.

    ``shift`` (world arguments, e.g. ``{"skew": [4, 4]}``) adds a fourth split, ``shift``, of
    ``n_test`` rows drawn from the world with those arguments changed: the test-time distribution
    that real life may bring. Runs report metrics on it beside the in-distribution test metrics.
    """

    def __init__(
        self,
        world: Any,
        targets: Sequence[str],
        features: Sequence[str],
        class_names: Sequence[str] | None = None,
        n_train: int = 4000,
        n_val: int = 1000,
        n_test: int = 4000,
        seed: int = 0,
        batch_size: int = 64,
        standardize: bool = False,
        shift: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        for name, value in [("n_train", n_train), ("n_val", n_val), ("n_test", n_test), ("batch_size", batch_size)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{name} must be a positive integer, got {value!r}")
        world_features = list(world.feature_names)
        if list(features) != world_features:  # by name and in order: a swapped pair would mislabel every column
            raise ValueError(
                f"data.features={list(features)} must name the world's features {world_features}, in order"
            )
        world_classes = getattr(world, "class_names", None)
        if class_names is not None and (world_classes is None or len(class_names) != len(world_classes)):
            raise ValueError(f"data.class_names={list(class_names)} must name the world's classes {world_classes}")
        if not targets:
            raise ValueError("data.targets must name at least one target")
        self.world = world
        self.shift = dict(shift or {})
        self.test_world = world.shifted(**self.shift) if self.shift else None
        self.targets = list(targets)
        self.target_name = self.targets[0]
        self.batch_keys = self.targets
        self.feature_names = list(features)
        self.class_names = list(class_names) if class_names is not None else None
        self.sizes = {"train": n_train, "val": n_val, "test": n_test}
        self.seed, self.batch_size, self.standardize = seed, batch_size, standardize
        self.splits: dict[str, dict[str, torch.Tensor]] = {}
        self.input_mean: torch.Tensor | None = None
        self.input_std: torch.Tensor | None = None
        self.target_mean: torch.Tensor | None = None
        self.target_std: torch.Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        # One seed per split, the shifted test split's last: the others stay the same with or without it.
        split_seeds = torch.randint(2**62, (len(SPLITS) + 1,), generator=torch.Generator().manual_seed(self.seed))
        device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
        draws = [(split, self.world, self.sizes[split]) for split in SPLITS]
        if self.test_world is not None:
            draws.append(("shift", self.test_world, self.sizes["test"]))
        for (split, world, size), split_seed in zip(draws, split_seeds.tolist()):
            # Only the test splits need the ground truth (for the Bayes-optimal references), and only the
            # targets kept are drawn, where the world can leave the others out.
            wanted = {"targets": tuple(self.targets)} if "targets" in inspect.signature(world.sample).parameters else {}
            generator = torch.Generator().manual_seed(split_seed)
            sample = world.sample(size, generator, truth=split in ("test", "shift"), **wanted)
            missing = [t for t in self.targets if t not in sample]
            if missing:
                raise ValueError(
                    f"data.targets={self.targets}: the world has no target {missing}; it offers "
                    f"{[k for k in sample if k != 'features' and not k.startswith('bayes_')]}"
                )
            keep = {"features", *self.targets, *(f"bayes_{t}" for t in self.targets)}
            self.splits[split] = {key: value.to(device) for key, value in sample.items() if key in keep}
            del sample
        if self.standardize:
            train_features = self.splits["train"]["features"]
            self.input_mean = train_features.mean(0).cpu()
            self.input_std = train_features.std(0).clamp_min(1e-8).cpu()
            train_target = self.splits["train"][self.targets[0]]
            if train_target.is_floating_point():
                self.target_mean = train_target.mean().cpu()
                self.target_std = train_target.std().clamp_min(1e-8).cpu()

    def teacher(self) -> tuple[torch.Tensor, float] | None:
        """The world's noiseless linear rule for the first target, if it has one."""
        teacher = getattr(self.world, "teacher", None)
        first_is_continuous = self.splits and self.splits["train"][self.targets[0]].is_floating_point()
        return teacher() if teacher is not None and first_is_continuous else None

    def teacher_boundaries(self) -> list[tuple[torch.Tensor, float]] | None:
        """The world's decision boundaries as lines ``w . x = c`` (one per threshold), if it has straight ones."""
        boundaries = getattr(self.world, "boundaries", None)
        return boundaries() if boundaries is not None else None

    def reference_metrics(self, split: str = "test", levels: list[float] | None = None) -> dict[str, float]:
        """What the Bayes-optimal predictor scores on ``split``, named like the tasks' own metrics.

        With quantile ``levels``, also the pinball loss and coverage of the Bayes-optimal quantiles.
        """
        data = self.splits[split]
        references: dict[str, float] = {}
        offsets = self.world.noise_quantiles(levels) if levels else None
        if offsets is not None and data[self.targets[0]].is_floating_point():
            truth, best = data[self.targets[0]], data[f"bayes_{self.targets[0]}"]
            quantiles = best.unsqueeze(-1) + offsets.to(best.device)
            error = truth.unsqueeze(-1) - quantiles
            tau = torch.tensor(levels, device=best.device)
            references[f"{split}/bayes_pinball_loss"] = torch.maximum(tau * error, (tau - 1) * error).mean().item()
            for level, below in zip(levels, (error <= 0).float().mean(0).tolist()):
                references[f"{split}/bayes_coverage/{level:g}"] = below
        for position, target in enumerate(self.targets):
            truth, best = data[target], data[f"bayes_{target}"]
            prefix = f"{split}/bayes_" if position == 0 else f"{split}/bayes_{target}_"
            if truth.is_floating_point():
                error = best - truth
                references[prefix + "mse"] = error.square().mean().item()
                references[prefix + "mae"] = error.abs().mean().item()
                references[prefix + "r2"] = (
                    1 - error.square().sum().item() / (truth - truth.mean()).square().sum().item()
                )
            else:
                references[prefix + "acc"] = (best == truth).float().mean().item()
        return references
