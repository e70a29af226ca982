"""In-memory batching for datasets that fit in RAM (every MedMNIST 28 px subset, ECG beats).

Indexing a tensor with a whole batch of indices replaces thousands of per-sample
`__getitem__` + collate calls per epoch. The shuffle order is a pure function of
(seed, epoch), so a run resumed from a checkpoint sees the same batches as one that never
stopped; with several processes (DDP) each rank takes its own share of the permutation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class TensorBatches(Dataset):
    """A dataset whose items are whole batches: `dataset[list_of_indices]`."""

    def __init__(self, *tensors: torch.Tensor) -> None:
        lengths = {len(t) for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"tensors differ in length: {sorted(lengths)}")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[index] for t in self.tensors)


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of indices, reshuffled per epoch from (seed, epoch) alone."""

    def __init__(
        self,
        weights_or_size: int | torch.Tensor,
        batch_size: int,
        shuffle: bool,
        seed: int,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        """`weights_or_size`: a dataset length, or per-sample weights for balanced sampling
        (drawn with replacement, as many as there are samples)."""
        self.weights = weights_or_size if isinstance(weights_or_size, torch.Tensor) else None
        self.size = len(self.weights) if self.weights is not None else int(weights_or_size)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
        if self.shuffle:
            return torch.randperm(self.size, generator=generator)
        return torch.arange(self.size)

    def _shard(self) -> torch.Tensor:
        order = self._order()
        if self.num_replicas == 1:
            return order
        per_rank = math.ceil(self.size / self.num_replicas)
        padded = torch.cat([order, order[: per_rank * self.num_replicas - self.size]])
        return padded[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        indices = self._shard().tolist()
        for start in range(0, len(indices), self.batch_size):
            yield indices[start : start + self.batch_size]

    def __len__(self) -> int:
        per_rank = math.ceil(self.size / self.num_replicas)
        return math.ceil(per_rank / self.batch_size)


def loader(tensors: tuple[torch.Tensor, ...], sampler: EpochBatchSampler) -> DataLoader:
    # batch_size=None: the sampler already yields batches, the dataset returns them whole.
    return DataLoader(TensorBatches(*tensors), sampler=sampler, batch_size=None, num_workers=0)
