"""Group batches from a `GroupDataset`: which groups go together in each step (`BucketBatchSampler`,
deterministic in (seed, epoch), sharded by rank), and how their sampled items become one `Batch`
(`GroupCollator`)."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch
from torch.utils.data import DistributedSampler

from unirank.adapters.base import Batch
from unirank.data.groups import GroupDataset
from unirank.model.packing import Layout


class BucketBatchSampler(DistributedSampler):
    """Batches of `batch_groups` groups of similar total length (less padding), in random order.

    Groups are shuffled per epoch (with `weights`: n groups drawn with replacement, each with its
    weight's probability), cut into windows of 50 batches, sorted by length within a window and
    batched; the batch order is shuffled again. Yields one list of (group, epoch) keys
    per batch; it is the DataLoader's `sampler` (batch_size=None), so Lightning calls set_epoch.
    Under torch.distributed it shards the batches itself (every rank computes the same list, pads
    it to a multiple of the world size by repeating its first batches, and takes every world-th
    batch from its rank), which is why it is a DistributedSampler: Lightning leaves it in place.
    """

    def __init__(self, lengths: list[int], batch_groups: int, seed: int, shuffle: bool = True, weights=None):
        # DistributedSampler.__init__ is deliberately not called: it needs a dataset and an
        # initialised process group; rank and world size are read here instead.
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = torch.distributed.get_rank() if distributed else 0
        self.world_size = torch.distributed.get_world_size() if distributed else 1
        self.lengths, self.batch_groups, self.seed, self.shuffle = lengths, batch_groups, seed, shuffle
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
        self.epoch = 0
        self._skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume_at(self, epoch: int, batches_done: int) -> None:
        """In `epoch` (once), yield only the batches after the first `batches_done`: a run resumed
        from a mid-epoch checkpoint trains on the rest of that epoch, in the same order."""
        self._skip = (epoch, batches_done)

    def __len__(self) -> int:
        return -(-self._n_batches() // self.world_size)

    def _n_batches(self) -> int:
        return -(-len(self.lengths) // self.batch_groups)

    def __iter__(self):
        n = len(self.lengths)
        if not self.shuffle:
            order = np.arange(n)
            batches = [order[i : i + self.batch_groups] for i in range(0, n, self.batch_groups)]
        else:
            rng = np.random.default_rng((self.seed, self.epoch))
            order = rng.permutation(n) if self.weights is None else rng.choice(n, size=n, p=self.weights)
            window = self.batch_groups * 50
            batches = []
            for start in range(0, n, window):
                chunk = sorted(order[start : start + window], key=lambda i: self.lengths[i])
                batches += [chunk[i : i + self.batch_groups] for i in range(0, len(chunk), self.batch_groups)]
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            padded = batches + batches[: len(self) * self.world_size - len(batches)]
            batches = padded[self.rank :: self.world_size]
        if self._skip is not None and self._skip[0] == self.epoch:
            batches, self._skip = batches[self._skip[1] :], None
        for batch in batches:
            yield [(int(g), self.epoch) for g in batch]


class GroupCollator:
    """Concatenates sampled groups: items → padded length-sorted chunks or packed rows (the
    layout's); comparisons → batch indices."""

    def __init__(self, dataset: GroupDataset, layout: Layout):
        self.dataset, self.layout = dataset, layout

    def __call__(self, samples: list[dict]) -> Batch:
        dataset = self.dataset
        batch, items = dataset.scoring_batch(np.concatenate([s["items"] for s in samples]), self.layout)
        position = {int(item): row for row, item in enumerate(items)}
        comp_a = [position[int(i)] for s in samples for i in s["comp_a"]]
        comp_b = [position[int(i)] for s in samples for i in s["comp_b"]]
        rows = pl.Series(items)
        batch.item_index = torch.as_tensor(items)
        batch.group_id = dataset.item_group.gather(rows).to_list()
        batch.item_id = dataset.item_id.gather(rows).to_list()
        batch.label = torch.as_tensor(dataset.label[items], dtype=torch.float32)
        batch.label_weight = torch.as_tensor(dataset.label_weight[items], dtype=torch.float32)
        batch.anchor_p = torch.as_tensor(dataset.anchor_p[items], dtype=torch.float32)
        batch.teacher = torch.as_tensor(dataset.teacher[items], dtype=torch.float32)
        batch.group_sizes = [int(np.isin(s["items"], items).sum()) for s in samples]
        batch.comp_a = torch.as_tensor(comp_a, dtype=torch.long)
        batch.comp_b = torch.as_tensor(comp_b, dtype=torch.long)
        batch.p = torch.as_tensor(np.concatenate([s["p"] for s in samples]), dtype=torch.float32)
        batch.weight = torch.as_tensor(np.concatenate([s["weight"] for s in samples]), dtype=torch.float32)
        return batch
