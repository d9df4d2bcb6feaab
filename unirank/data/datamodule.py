"""Group batches: a batch is a set of groups; each item in it is encoded once and every comparison
among its items reuses those scores.

Large groups (say 100 mined candidates) contribute a sampled subset of at most
`max_items_per_group` items, chosen by walking the group's comparisons in random order so the
subset keeps as many comparisons as possible. Every item is tokenised once, at setup. Sampling
depends only on (seed, epoch, group), so a resumed run sees the same batches as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from unirank.adapters.base import Adapter, Encoded, pad_chunks
from unirank.data.sources import DataSource
from unirank.data.tables import Tables


@dataclass(frozen=True)
class Group:
    """One group's items (indices into the split's item list) and its comparisons (local indices)."""

    items: np.ndarray
    comp_a: np.ndarray
    comp_b: np.ndarray
    p: np.ndarray
    weight: np.ndarray


class GroupDataset(Dataset):
    """Items of one split, tokenised once; __getitem__([(group, epoch), ...]) samples those groups."""

    def __init__(self, tables: Tables, encoded: list[Encoded], max_items_per_group: int, seed: int):
        self.tables, self.encoded = tables, encoded
        self.max_items, self.seed = max_items_per_group, seed
        items = tables.items.with_row_index("_item")
        self.item_group = items["group_id"].to_list()
        self.item_id = items["item_id"].to_list()
        self.label = items["label"].fill_null(float("nan")).to_numpy()
        self.step_labels = items["step_labels"].to_list() if "step_labels" in items.columns else None
        self.teacher = (
            items["first_stage_score"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
            if "first_stage_score" in items.columns
            else np.full(items.height, np.nan)
        )
        comps = tables.indexed_comparisons()
        by_group_items = items.group_by("group_id", maintain_order=True).agg(pl.col("_item"))
        by_group_comps = {g: frame for (g,), frame in comps.partition_by("group_id", as_dict=True).items()}
        self.groups: list[Group] = []
        for group_id, members in by_group_items.iter_rows():
            frame = by_group_comps.get(group_id)
            members = np.asarray(members, dtype=np.int64)
            if frame is None:
                empty = np.zeros(0)
                self.groups.append(Group(members, empty.astype(np.int64), empty.astype(np.int64), empty, empty))
                continue
            self.groups.append(
                Group(
                    members,
                    frame["_a"].to_numpy(),
                    frame["_b"].to_numpy(),
                    frame["p"].to_numpy(),
                    frame["weight"].to_numpy(),
                )
            )
        self.lengths = [sum(len(encoded[i].input_ids) for i in g.items[: self.max_items]) for g in self.groups]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, keys: list[tuple[int, int]]) -> list[dict]:
        """The samples of one batch: keys are (group index, epoch) pairs."""
        return [self._sample_group(index, epoch) for index, epoch in keys]

    def _sample_group(self, index: int, epoch: int) -> dict:
        group = self.groups[index]
        chosen = self._sample(group, np.random.default_rng((self.seed, epoch, index)))
        keep = np.isin(group.comp_a, chosen) & np.isin(group.comp_b, chosen)
        return {
            "items": chosen,
            "comp_a": group.comp_a[keep],
            "comp_b": group.comp_b[keep],
            "p": group.p[keep],
            "weight": group.weight[keep],
        }

    def _sample(self, group: Group, rng: np.random.Generator) -> np.ndarray:
        if len(group.items) <= self.max_items:
            return group.items
        chosen: dict[int, None] = {}
        for c in rng.permutation(len(group.comp_a)):
            if len(chosen) + 2 > self.max_items:
                break
            chosen[int(group.comp_a[c])] = None
            chosen[int(group.comp_b[c])] = None
        rest = [i for i in rng.permutation(group.items) if i not in chosen]
        for i in rest[: self.max_items - len(chosen)]:
            chosen[int(i)] = None
        return np.fromiter(chosen, dtype=np.int64)


class BucketBatchSampler(DistributedSampler):
    """Batches of `batch_groups` groups of similar total length (less padding), in random order.

    Groups are shuffled per epoch, cut into windows of 50 batches, sorted by length within a
    window and batched; the batch order is shuffled again. Yields one list of (group, epoch) keys
    per batch; it is the DataLoader's `sampler` (batch_size=None), so Lightning calls set_epoch.
    Under torch.distributed it shards the batches itself (every rank computes the same list, pads
    it to a multiple of the world size by repeating its first batches, and takes every world-th
    batch from its rank), which is why it is a DistributedSampler: Lightning leaves it in place.
    """

    def __init__(self, lengths: list[int], batch_groups: int, seed: int, shuffle: bool = True):
        # DistributedSampler.__init__ is deliberately not called: it needs a dataset and an
        # initialised process group; rank and world size are read here instead.
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        self.rank = torch.distributed.get_rank() if distributed else 0
        self.world_size = torch.distributed.get_world_size() if distributed else 1
        self.lengths, self.batch_groups, self.seed, self.shuffle = lengths, batch_groups, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

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
            order = rng.permutation(n)
            window = self.batch_groups * 50
            batches = []
            for start in range(0, n, window):
                chunk = sorted(order[start : start + window], key=lambda i: self.lengths[i])
                batches += [chunk[i : i + self.batch_groups] for i in range(0, len(chunk), self.batch_groups)]
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.world_size > 1:
            padded = batches + batches[: len(self) * self.world_size - len(batches)]
            batches = padded[self.rank :: self.world_size]
        for batch in batches:
            yield [(int(g), self.epoch) for g in batch]


class GroupCollator:
    """Concatenates sampled groups: items → padded length-sorted chunks; comparisons → batch indices."""

    def __init__(self, dataset: GroupDataset, pad_id: int, chunk_size: int):
        self.dataset, self.pad_id, self.chunk_size = dataset, pad_id, chunk_size

    def __call__(self, samples: list[dict]) -> dict:
        items = np.concatenate([s["items"] for s in samples])
        position = {int(item): row for row, item in enumerate(items)}
        comp_a = [position[int(i)] for s in samples for i in s["comp_a"]]
        comp_b = [position[int(i)] for s in samples for i in s["comp_b"]]
        chunks, order = pad_chunks([self.dataset.encoded[i] for i in items], self.pad_id, self.chunk_size)
        return {
            "chunks": chunks,
            "order": order,
            "item_index": torch.as_tensor(items),
            "group_id": [self.dataset.item_group[i] for i in items],
            "item_id": [self.dataset.item_id[i] for i in items],
            "label": torch.as_tensor(self.dataset.label[items], dtype=torch.float32),
            "teacher": torch.as_tensor(self.dataset.teacher[items], dtype=torch.float32),
            "group_sizes": [len(s["items"]) for s in samples],
            "step_labels": None if self.dataset.step_labels is None else [self.dataset.step_labels[i] for i in items],
            "comp_a": torch.as_tensor(comp_a, dtype=torch.long),
            "comp_b": torch.as_tensor(comp_b, dtype=torch.long),
            "p": torch.as_tensor(np.concatenate([s["p"] for s in samples]), dtype=torch.float32),
            "weight": torch.as_tensor(np.concatenate([s["weight"] for s in samples]), dtype=torch.float32),
        }


class UnirankDataModule(L.LightningDataModule):
    """Tables from a source, split into train and validation groups, served as group batches.

    Args:
        source: where the tables come from (TablesDir, Preferences, MinedBeir, ...).
        batch_groups: groups per batch.
        max_items_per_group: items sampled from a larger group per step.
        chunk_size: sequences per forward chunk (each chunk is padded to its own longest).
        seed: sampling seed (with the epoch and the group).
    """

    def __init__(
        self,
        source: DataSource,
        batch_groups: int = 8,
        max_items_per_group: int = 16,
        chunk_size: int = 32,
        seed: int = 0,
    ):
        super().__init__()
        self.source = source
        self.batch_groups, self.max_items_per_group = batch_groups, max_items_per_group
        self.chunk_size, self.seed = chunk_size, seed
        self.tables: Tables | None = None
        self.datasets: dict[str, GroupDataset] = {}
        self.tokenizer = None
        self.adapter: Adapter | None = None

    def attach(self, tokenizer, adapter: Adapter) -> None:
        """Use the model's tokenizer and adapter (setup takes them from the trainer's module otherwise)."""
        self.tokenizer, self.adapter = tokenizer, adapter

    def setup(self, stage: str | None = None) -> None:
        if self.tables is None:
            self.tables = self.source.load()
        if self.tokenizer is None:
            module = self.trainer.lightning_module if self.trainer is not None else None
            if module is None:
                raise RuntimeError("UnirankDataModule needs attach(tokenizer, adapter) or a trainer with a module")
            self.attach(module.tokenizer, module.adapter)
        for split in ("train", "validation", "test"):
            if split not in self.datasets:
                part = self.tables.split(split)
                if part.groups.height:
                    self.datasets[split] = self.dataset(part)

    def dataset(self, tables: Tables) -> GroupDataset:
        """Tokenise every item of `tables` once (context joined from groups) and index its groups."""
        steps = tables.items["steps"].to_list() if "steps" in tables.items.columns else None
        encoded = self.adapter.encode(
            self.tokenizer, tables.item_contexts(), tables.items["text"].to_list(), steps=steps
        )
        return GroupDataset(tables, encoded, self.max_items_per_group, self.seed)

    def loader(self, dataset: GroupDataset, shuffle: bool) -> DataLoader:
        batches = BucketBatchSampler(dataset.lengths, self.batch_groups, self.seed, shuffle=shuffle)
        return DataLoader(
            dataset,
            sampler=batches,
            batch_size=None,
            collate_fn=GroupCollator(dataset, self.tokenizer.pad_token_id, self.chunk_size),
        )

    def train_dataloader(self) -> DataLoader:
        if "train" not in self.datasets:
            raise ValueError("the data has no groups in the 'train' split")
        return self.loader(self.datasets["train"], shuffle=True)

    def val_dataloader(self):
        return self.loader(self.datasets["validation"], shuffle=False) if "validation" in self.datasets else []

    def test_dataloader(self):
        return self.loader(self.datasets["test"], shuffle=False) if "test" in self.datasets else []
