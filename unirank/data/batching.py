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
    """Batches of `batch_groups` groups of similar total length (less padding), in random order;
    with `batch_tokens`, batches of as many groups as fit that many tokens (`tokens`: each group's,
    estimated), at least one, so a step holds about the same work whatever the groups' lengths.

    Groups are shuffled per epoch (with `weights`: n groups drawn with replacement, each with its
    weight's probability), cut into windows of 50 batches, sorted by length within a window and
    batched; the batch order is shuffled again. Yields one list of (group, epoch) keys
    per batch; it is the DataLoader's `sampler` (batch_size=None), so Lightning calls set_epoch.
    Under torch.distributed it shards the batches itself (every rank computes the same list, pads
    it to a multiple of the world size by repeating its first batches, and takes every world-th
    batch from its rank), which is why it is a DistributedSampler: Lightning leaves it in place.
    """

    def __init__(
        self,
        lengths: list[int],
        batch_groups: int,
        seed: int,
        shuffle: bool = True,
        weights=None,
        batch_tokens: int | None = None,
        tokens=None,
    ):
        # DistributedSampler.__init__ is deliberately not called: it needs a dataset and an
        # initialised process group; rank and world size are read here instead.
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = torch.distributed.get_rank() if distributed else 0
        self.world_size = torch.distributed.get_world_size() if distributed else 1
        self.lengths, self.batch_groups, self.seed, self.shuffle = lengths, batch_groups, seed, shuffle
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
        if batch_tokens is not None and (tokens is None or batch_tokens < 1):
            raise ValueError("batch_tokens needs each group's token count and must be at least 1")
        self.batch_tokens, self.tokens = batch_tokens, None if tokens is None else np.asarray(tokens, np.float64)
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
        """This epoch's batches before sharding: counted, or (a token budget) cut to count them."""
        if self.batch_tokens is None:
            return -(-len(self.lengths) // self.batch_groups)
        return len(self._batches())

    def _cut(self, groups) -> list:
        """Consecutive groups cut into batches: batch_groups at a time, or up to batch_tokens."""
        if self.batch_tokens is None:
            return [groups[i : i + self.batch_groups] for i in range(0, len(groups), self.batch_groups)]
        batches, current, filled = [], [], 0.0
        for g in groups:
            if current and filled + self.tokens[g] > self.batch_tokens:
                batches.append(current)
                current, filled = [], 0.0
            current.append(g)
            filled += self.tokens[g]
        return batches + ([current] if current else [])

    def _batches(self) -> list:
        """This epoch's batches, before sharding (a function of seed and epoch alone)."""
        n = len(self.lengths)
        if not self.shuffle:
            return self._cut(np.arange(n))
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(n) if self.weights is None else rng.choice(n, size=n, p=self.weights)
        window = self.batch_groups * 50
        batches = []
        for start in range(0, n, window):
            batches += self._cut(sorted(order[start : start + window], key=lambda i: self.lengths[i]))
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self):
        batches = self._batches()
        if self.world_size > 1:
            padded = batches + batches[: -(-len(batches) // self.world_size) * self.world_size - len(batches)]
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
