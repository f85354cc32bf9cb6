"""Batches as slices of tensors already in memory: one index tensor per batch, no per-sample collate."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

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
        dtype = torch.int32 if self.n < 2**31 else torch.int64  # half the memory of 10M rows' order; same values
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.n, generator=generator, dtype=dtype)
        else:
            order = torch.arange(self.n, dtype=dtype)
        for global_batch in order.split(self.batch_size * world_size):
            yield global_batch if world_size == 1 else torch.tensor_split(global_batch, world_size)[rank]


class BatchLoader:
    """Iterates ``(tensor[index], ...)`` batches over tensors in memory, ready for a Lightning Trainer.

    Cheaper than a ``DataLoader``: no workers, fetcher or collate, just one gather per item. With
    ``batches_per_call = K > 1`` each item is a list of K consecutive batches (gathered at once,
    then split into views), for a task that takes K optimizer steps per Lightning call; the batches
    and their order are the same as with ``K = 1``.

    It is resumable: a checkpoint saved mid-epoch records where the epoch stood, and after a
    restart the loader skips the items already trained on, so a resumed run takes the very same
    steps as an uninterrupted one. ``items_done`` tells it, at restart, how many items of the
    interrupted epoch were already processed (the Trainer's own count).
    """

    def __init__(
        self,
        tensors: tuple[torch.Tensor, ...],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        batches_per_call: int = 1,
        items_done: Callable[[], int] | None = None,
        split: str = "train",
    ) -> None:
        if batches_per_call < 1:
            raise ValueError(f"batches_per_call must be >= 1, got {batches_per_call}")
        self.dataset = TensorBatches(*tensors)
        self.sampler = IndexBatchSampler(len(self.dataset), batch_size, shuffle=shuffle, seed=seed)
        self.batch_sampler = None  # what Lightning looks for on a DataLoader: the sampler yields whole batches
        self.batches_per_call = batches_per_call
        self.items_done = items_done
        self.split = split  # which split it serves: a test on the shifted split reports shift/... metrics
        self._skip = 0

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batches_per_call)

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = self._skip, 0
        indices = iter(self.sampler)
        for position in range(len(self)):
            group = [index for _, index in zip(range(self.batches_per_call), indices)]
            if position < skip:
                continue
            if self.batches_per_call == 1:
                yield self.dataset[group[0]]
                continue
            rows = self.dataset[torch.cat(group)]
            sizes = [len(index) for index in group]
            yield list(zip(*(tensor.split(sizes) for tensor in rows)))

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.sampler.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.set_epoch(state["epoch"])
        done = self.items_done() if self.items_done is not None else 0
        self._skip = done if 0 < done < len(self) else 0


def batches_done_in_epoch(datamodule: Any) -> Callable[[], int]:
    """How many training items (calls) of the current epoch the datamodule's Trainer has processed."""

    def done() -> int:
        from catbrain.compat.lightning import calls_done_in_epoch

        trainer = getattr(datamodule, "trainer", None)
        return calls_done_in_epoch(trainer) if trainer is not None else 0

    return done
