"""LightningDataModules over in-memory tensors, and the CSV reader they share with ``catbrain-predict``.

Exports load on first use, so reading a CSV file does not import Lightning.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "BatchLoader": "catbrain.data.loading",
    "CsvDataModule": "catbrain.data.csv",
    "IndexBatchSampler": "catbrain.data.loading",
    "TensorBatches": "catbrain.data.loading",
    "WorldDataModule": "catbrain.data.world",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'catbrain.data' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
