"""Batches as slices of tensors already in memory: one index tensor per batch, no per-sample collate."""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler


class TensorBatches(Dataset):
    """Tensors of equal length; indexing with an index tensor returns a whole batch at once."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        if not tensors or any(len(t) != len(tensors[0]) for t in tensors):
            raise ValueError(f"TensorBatches needs tensors of one length, got lengths {[len(t) for t in tensors]}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        index = index.to(self.tensors[0].device, non_blocking=True)
        return tuple(t[index] for t in self.tensors)


def _distributed_rank_and_size() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class IndexBatchSampler(Sampler[torch.Tensor]):
    """Yields one index tensor per batch, reshuffled each epoch from ``seed + epoch``.

    Under data-parallel training every process draws the same permutation, cuts it into global
    batches of ``batch_size * world_size`` rows, and keeps its own disjoint share of each, so
    the processes together take the same optimisation steps as one process with the global batch.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"IndexBatchSampler needs n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        _, world_size = _distributed_rank_and_size()
        return math.ceil(self.n / (self.batch_size * world_size))

    def __iter__(self) -> Iterator[torch.Tensor]:
        rank, world_size = _distributed_rank_and_size()
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator)
        else:
            order = torch.arange(self.n)
        for global_batch in order.split(self.batch_size * world_size):
            yield global_batch if world_size == 1 else torch.tensor_split(global_batch, world_size)[rank]


def keep_batch(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The collate function for ready-made batches: nothing to do."""
    return batch
