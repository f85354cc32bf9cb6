"""What every catbrain DataModule shares: splits of tensors in memory, served by resumable batch loaders."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from catbrain.data.loading import BatchLoader, batches_done_in_epoch


class InMemoryDataModule(pl.LightningDataModule):
    """Splits ``train``, ``val``, ``test`` as dicts of tensors; batches are ``(features, *batch_keys)``.

    A subclass fills ``self.splits`` and sets ``feature_names``, ``batch_size``, ``seed`` and
    ``batch_keys`` (the names of the targets a batch carries). How many batches each training item
    holds is the task's ``steps_per_call``, learned from the trainer when the loaders are made.
    """

    splits: dict[str, dict[str, torch.Tensor]]
    feature_names: list[str]
    batch_keys: list[str]
    batch_size: int
    seed: int

    @property
    def num_features(self) -> int:
        return len(self.feature_names)

    def _loader(self, split: str, shuffle: bool) -> BatchLoader:
        if split not in self.splits:
            raise ValueError(f"data: no {split} split: data.test_path alone serves catbrain-eval, not training")
        data = self.splits[split]
        tensors = (data["features"], *(data[key] for key in self.batch_keys))
        per_call = self.batches_per_call()
        if shuffle:  # training: the optimizer's batch size, grouped as the task asks
            return BatchLoader(tensors, self.batch_size, True, self.seed, per_call, batches_done_in_epoch(self))
        # evaluation: batch size does not change the metrics, so take big batches
        return BatchLoader(tensors, self.batch_size * per_call, False, split=split)

    def batches_per_call(self) -> int:
        """The training task's optimizer steps per Lightning call (1 without a trainer or task)."""
        task = getattr(self.trainer, "lightning_module", None) if self.trainer is not None else None
        return int(getattr(task, "steps_per_call", 1))

    def train_dataloader(self) -> BatchLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> BatchLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> BatchLoader:
        return self._loader("test", shuffle=False)

    def split_dataloader(self, split: str) -> BatchLoader:
        """Evaluation batches of any split (``shift``: the shifted test split)."""
        return self._loader(split, shuffle=False)

    def training_arrays(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Training features and the first target, if it is a number (for a closed-form fit)."""
        train = self.splits.get("train")
        if not train or not train[self.batch_keys[0]].is_floating_point():
            return None
        return train["features"], train[self.batch_keys[0]]
