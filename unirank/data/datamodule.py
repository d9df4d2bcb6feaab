"""Group batches: a batch is a set of groups; each item in it is encoded once and every comparison
among its items reuses those scores.

Large groups (say 100 mined candidates) contribute a sampled subset of at most
`max_items_per_group` items, chosen by walking the group's comparisons in a random order weighted
by their evidence, so the subset keeps as many (and as informative) comparisons as possible.
Sampling depends only on (seed, epoch, group), so a resumed run sees the same batches as an
uninterrupted one.

Memory: a split is indexed as flat arrays (groups → items → comparisons, CSR offsets); texts stay
in their source column (memory-mapped for `TablesDir(memory_map=True)`) and are read and tokenised
per batch, so nothing proportional to the text or its tokens is held for the whole data set.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import lightning as L
import numpy as np
import polars as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from unirank.adapters.base import CHARS_PER_TOKEN, Adapter, Batch, Encoded, pad_chunks
from unirank.data.sources import DataSource
from unirank.data.tables import TableError, Tables
from unirank.data.texts import SOURCE_ROW, TEXT_COLUMNS, FrameTexts, MappedTexts


@dataclass(frozen=True)
class Group:
    """One group's items (rows of the split) and its comparisons (item_a / item_b as split rows)."""

    items: np.ndarray
    comp_a: np.ndarray
    comp_b: np.ndarray
    p: np.ndarray
    weight: np.ndarray


def _offsets(sorted_owner: np.ndarray, n: int) -> np.ndarray:
    """CSR offsets: entries of owner g are [offsets[g], offsets[g + 1]) of the sorted arrays."""
    return np.searchsorted(sorted_owner, np.arange(n + 1)).astype(np.int64)


class GroupDataset(Dataset):
    """The groups of one split; __getitem__([(group, epoch), ...]) samples those groups.

    tables: the split's tables (items with a `_source_row` column, text not needed);
    texts: the item text (and steps) columns, read at `_source_row`, in memory or memory-mapped;
    encoder(contexts, texts, steps) → Encoded, the adapter with its tokenizer.
    """

    def __init__(
        self,
        tables: Tables,
        texts: FrameTexts | MappedTexts,
        encoder: Callable[..., list[Encoded]],
        max_items_per_group: int,
        seed: int,
    ):
        self.tables, self.texts, self.encoder = tables, texts, encoder
        self.max_items, self.seed = max_items_per_group, seed
        items = tables.items
        self.source_row = items[SOURCE_ROW].to_numpy().astype(np.int64)
        self.item_group = items["group_id"]
        self.item_id = items["item_id"]
        self.label = items["label"].fill_null(float("nan")).to_numpy()
        self.label_weight = (
            items["label_weight"].cast(pl.Float64).to_numpy()
            if "label_weight" in items.columns
            else np.ones(items.height)
        )
        self.teacher = (
            items["first_stage_score"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
            if "first_stage_score" in items.columns
            else np.full(items.height, np.nan)
        )
        self.step_labels = items["step_labels"] if "step_labels" in items.columns else None
        group_ids = items.select(pl.col("group_id").unique(maintain_order=True)).with_row_index("_group")
        self.contexts = group_ids.join(tables.groups, on="group_id", how="left", maintain_order="left")["context"]
        self.item_group_index = (
            (items.select("group_id").join(group_ids, on="group_id", how="left", maintain_order="left")["_group"])
            .to_numpy()
            .astype(np.int64)
        )
        n_groups = group_ids.height
        order = np.argsort(self.item_group_index, kind="stable")
        self.group_items, self.item_offsets = order, _offsets(self.item_group_index[order], n_groups)
        comps = tables.indexed_comparisons().join(group_ids, on="group_id", how="left", maintain_order="left")
        owner = comps["_group"].to_numpy().astype(np.int64)
        order = np.argsort(owner, kind="stable")
        self.comp_offsets = _offsets(owner[order], n_groups)
        self.comp_a, self.comp_b = comps["_a"].to_numpy()[order], comps["_b"].to_numpy()[order]
        self.p, self.weight = comps["p"].to_numpy()[order], comps["weight"].to_numpy()[order]
        self.lengths = self._group_lengths()

    def _group_lengths(self) -> list[int]:
        """Bytes of text + context of the first max_items of each group: the bucketing key (a cheap
        stand-in for the token count, which would need every item tokenised up front)."""
        text_bytes = self.texts.byte_lengths("text")[self.source_row]
        context_bytes = self.contexts.str.len_bytes().fill_null(0).to_numpy()[self.item_group_index]
        size = (text_bytes + context_bytes).astype(np.int64)[self.group_items]  # in group order
        owner = self.item_group_index[self.group_items]
        kept = np.arange(len(owner)) - self.item_offsets[owner] < self.max_items
        return np.bincount(owner[kept], weights=size[kept], minlength=len(self)).astype(np.int64).tolist()

    def __len__(self) -> int:
        return len(self.item_offsets) - 1

    @property
    def n_items(self) -> int:
        return len(self.source_row)

    def group(self, index: int) -> Group:
        items = self.group_items[self.item_offsets[index] : self.item_offsets[index + 1]]
        comps = slice(self.comp_offsets[index], self.comp_offsets[index + 1])
        return Group(items, self.comp_a[comps], self.comp_b[comps], self.p[comps], self.weight[comps])

    def encode(self, rows) -> list[Encoded]:
        """Tokenise the items at these split rows (context, text and steps read from their columns)."""
        rows = np.asarray(rows, dtype=np.int64)
        source = self.source_row[rows]
        texts = self.texts.take("text", source)
        contexts = self.contexts.gather(pl.Series(self.item_group_index[rows])).to_list()
        steps = self.texts.take("steps", source) if "steps" in self.texts.columns else None
        return self.encoder(contexts, texts, steps=steps)

    def __getitem__(self, keys: list[tuple[int, int]]) -> list[dict]:
        """The samples of one batch: keys are (group index, epoch) pairs."""
        return [self._sample_group(index, epoch) for index, epoch in keys]

    def _sample_group(self, index: int, epoch: int) -> dict:
        group = self.group(index)
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
        # comparisons in a random order weighted by their evidence (keys u^(1/w), Efraimidis-Spirakis):
        # a weak tie between two unjudged candidates rarely displaces a judged comparison
        keys = rng.random(len(group.comp_a)) ** (1.0 / group.weight)
        for c in np.argsort(-keys, kind="stable"):
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

    def __call__(self, samples: list[dict]) -> Batch:
        dataset = self.dataset
        items = np.concatenate([s["items"] for s in samples])
        position = {int(item): row for row, item in enumerate(items)}
        comp_a = [position[int(i)] for s in samples for i in s["comp_a"]]
        comp_b = [position[int(i)] for s in samples for i in s["comp_b"]]
        chunks, order = pad_chunks(dataset.encode(items), self.pad_id, self.chunk_size)
        rows = pl.Series(items)
        return Batch(
            chunks=chunks,
            order=order,
            item_index=torch.as_tensor(items),
            group_id=dataset.item_group.gather(rows).to_list(),
            item_id=dataset.item_id.gather(rows).to_list(),
            label=torch.as_tensor(dataset.label[items], dtype=torch.float32),
            teacher=torch.as_tensor(dataset.teacher[items], dtype=torch.float32),
            group_sizes=[len(s["items"]) for s in samples],
            step_labels=None if dataset.step_labels is None else dataset.step_labels.gather(rows).to_list(),
            comp_a=torch.as_tensor(comp_a, dtype=torch.long),
            comp_b=torch.as_tensor(comp_b, dtype=torch.long),
            p=torch.as_tensor(np.concatenate([s["p"] for s in samples]), dtype=torch.float32),
            weight=torch.as_tensor(np.concatenate([s["weight"] for s in samples]), dtype=torch.float32),
        )


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
        self._texts = None

    def attach(self, tokenizer, adapter: Adapter) -> None:
        """Tokenise with the model's tokenizer and adapter. A UnirankModule's fit attaches its own
        (`unirank.training.callbacks.AttachEncoder`); loaders need it, setup does not."""
        first = self.adapter is None
        self.tokenizer, self.adapter = tokenizer, adapter
        if first:
            self._warn_long_texts()

    def setup(self, stage: str | None = None) -> None:
        if self.tables is None:
            self.tables = self.source.load()
        if self.tables.texts is not None:  # memory-mapped: items already hold _source_row and no text
            index, texts = self.tables, self.tables.texts
        else:
            text_columns = [c for c in TEXT_COLUMNS if c in self.tables.items.columns]
            items = self.tables.items.with_row_index(SOURCE_ROW)
            # the index holds no text, so splitting it copies none
            index = Tables(self.tables.groups, items.drop(text_columns), self.tables.comparisons)
            texts = FrameTexts(self.tables.items.select(text_columns))
        for split in ("train", "validation", "test"):
            if split not in self.datasets:
                part = index.split(split)
                if part.groups.height:
                    self.datasets[split] = GroupDataset(part, texts, self.encode, self.max_items_per_group, self.seed)

        first, self._texts = self._texts is None, texts
        if first:
            self._warn_long_texts()
        train = self.datasets.get("train")
        if train is not None and not len(train.comp_a) and np.isnan(train.label).all() and train.step_labels is None:
            where = (
                getattr(self.source, "path", None)
                or getattr(self.source, "beir_dir", None)
                or type(self.source).__name__
            )
            raise TableError(f"{where}: the train split has no comparisons and no labels: there is nothing to train on")

    def _warn_long_texts(self) -> None:
        """Once both the texts (setup) and the adapter (attach) are known: how many texts the
        adapter will cut before tokenising."""
        if self.adapter is None or self._texts is None or self.adapter.domain == "process":
            return
        limit = self.adapter.max_length * CHARS_PER_TOKEN
        over = int((self._texts.byte_lengths("text") > limit).sum())
        if over:
            warnings.warn(
                f"{over} item text(s) longer than {limit:,} bytes: each is cut to max_length × {CHARS_PER_TOKEN} "
                "characters before tokenising (truncation would drop the rest anyway)",
                stacklevel=3,
            )

    def encode(self, contexts: list[str], texts: list[str], steps: list | None = None) -> list[Encoded]:
        """The model's adapter and tokenizer: (context, text[, steps]) → token ids."""
        return self.adapter.encode(self.tokenizer, contexts, texts, steps=steps)

    def loader(self, dataset: GroupDataset, shuffle: bool) -> DataLoader:
        if self.tokenizer is None:
            raise RuntimeError("UnirankDataModule needs attach(tokenizer, adapter) before its loaders")
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
