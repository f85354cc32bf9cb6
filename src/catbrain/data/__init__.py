"""LightningDataModules over in-memory tensors."""

from catbrain.data.loading import IndexBatchSampler, TensorBatches
from catbrain.data.world import WorldDataModule

__all__ = ["IndexBatchSampler", "TensorBatches", "WorldDataModule"]
