"""A split indexed for group batches: a batch is a set of groups; each item in it is encoded once and every comparison
among its items reuses those scores.

Large groups (say 100 mined candidates) contribute a sampled subset of at most
`max_items_per_group` items, chosen by walking the group's comparisons in a random order weighted
by their evidence, so the subset keeps as many (and as informative) comparisons as possible.
Sampling depends only on (seed, epoch, group), so a resumed run sees the same batches as an
uninterrupted one. A process solution's steps are items of their own (`unirank.data.steps`): a
sampled solution brings them, and each is read at its position in its solution's input, which is
encoded once.

Memory: a split is indexed as flat arrays (groups → items → comparisons, CSR offsets); texts stay
in their source column (memory-mapped for `TablesDir(memory_map=True)`) and are read and tokenised
per batch, so nothing proportional to the text or its tokens is held for the whole data set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch.utils.data import Dataset

from unirank.adapters.base import Batch, Encoded
from unirank.data.steps import PARENT, POSITION
from unirank.data.tables import Tables
from unirank.data.texts import SOURCE_ROW, FrameTexts, MappedTexts
from unirank.model.packing import Layout


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
        self.parent, self.position = self._step_links(items)
        group_ids = items.select(pl.col("group_id").unique(maintain_order=True)).with_row_index("_group")
        joined = group_ids.join(tables.groups, on="group_id", how="left", maintain_order="left")
        self.contexts = joined["context"]
        self.group_weight = (
            joined["sampling_weight"].cast(pl.Float64).to_numpy() if "sampling_weight" in joined.columns else None
        )
        """Each group's sampling weight (a `Mixture`'s), in group order; None: every group equally likely."""
        self.item_group_index = (
            (items.select("group_id").join(group_ids, on="group_id", how="left", maintain_order="left")["_group"])
            .to_numpy()
            .astype(np.int64)
        )
        n_groups = group_ids.height
        sequences = np.flatnonzero(self.parent < 0)  # items with an input of their own (not steps)
        order = sequences[np.argsort(self.item_group_index[sequences], kind="stable")]
        self.group_items, self.item_offsets = order, _offsets(self.item_group_index[order], n_groups)
        steps = np.flatnonzero(self.parent >= 0)
        self.step_rows = steps[np.lexsort((self.position[steps], self.parent[steps]))]
        self.step_offsets = _offsets(self.parent[self.step_rows], items.height)
        self.aggregated = np.diff(self.step_offsets) > 0
        """Items whose score aggregates their steps' (process solutions): not one output of the head."""
        comps = tables.indexed_comparisons().join(group_ids, on="group_id", how="left", maintain_order="left")
        owner = comps["_group"].to_numpy().astype(np.int64)
        order = np.argsort(owner, kind="stable")
        self.comp_offsets = _offsets(owner[order], n_groups)
        self.comp_a, self.comp_b = comps["_a"].to_numpy()[order], comps["_b"].to_numpy()[order]
        self.p, self.weight = comps["p"].to_numpy()[order], comps["weight"].to_numpy()[order]
        compared = np.zeros(items.height, dtype=bool)
        compared[self.comp_a], compared[self.comp_b] = True, True
        self.anchor_p = np.where(compared, np.nan, self.label)
        """An item's preference over the anchor (its label) where the label is its only evidence (it
        takes part in no comparison: a process step, a pointwise-labelled item), else NaN."""
        self.lengths = self._group_lengths()

    @staticmethod
    def _step_links(items: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(parent, position) per row: a step item's solution row and 0-based step number; −1 for
        items with an input of their own (`unirank.data.steps`)."""
        if PARENT not in items.columns:
            return np.full(items.height, -1, dtype=np.int64), np.full(items.height, -1, dtype=np.int64)
        rows = items.select("group_id", "item_id").with_row_index("_row")
        parents = items.select("group_id", pl.col(PARENT).alias("item_id"))
        parent = parents.join(rows, on=["group_id", "item_id"], how="left", maintain_order="left")["_row"]
        return (
            parent.fill_null(-1).to_numpy().astype(np.int64),
            items[POSITION].fill_null(-1).to_numpy().astype(np.int64),
        )

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

    def token_lengths(self, sample: int = 256) -> np.ndarray:
        """Each group's tokens (its first max_items inputs), estimated from its bytes (`lengths`) at
        the tokens per byte measured on `sample` of the split's inputs, encoded as the model encodes."""
        inputs = self.group_items
        rows = np.random.default_rng(self.seed).choice(inputs, size=min(sample, len(inputs)), replace=False)
        tokens = sum(len(e.input_ids) for e in self.encode(np.sort(rows)))
        text_bytes = self.texts.byte_lengths("text")[self.source_row[rows]]
        context_bytes = self.contexts.str.len_bytes().fill_null(0).to_numpy()[self.item_group_index[rows]]
        per_byte = tokens / max(1, int(text_bytes.sum() + context_bytes.sum()))
        return np.asarray(self.lengths, dtype=np.float64) * per_byte

    @property
    def n_items(self) -> int:
        return len(self.source_row)

    def group(self, index: int) -> Group:
        items = self.group_items[self.item_offsets[index] : self.item_offsets[index + 1]]
        comps = slice(self.comp_offsets[index], self.comp_offsets[index + 1])
        return Group(items, self.comp_a[comps], self.comp_b[comps], self.p[comps], self.weight[comps])

    def with_steps(self, rows: np.ndarray) -> np.ndarray:
        """The rows followed by the step items of each, in step order."""
        steps = [self.step_rows[self.step_offsets[r] : self.step_offsets[r + 1]] for r in rows]
        return np.concatenate([np.asarray(rows, dtype=np.int64), *steps])

    def scoring_batch(self, rows: np.ndarray, layout: Layout) -> tuple[Batch, np.ndarray]:
        """(a `Batch` that scores the items at these rows, the rows it kept). Each input is encoded
        once: a step item is read at its position in its solution's input; a step that truncation
        cut from that input has no score and is left out."""
        rows = np.asarray(rows, dtype=np.int64)
        parent = self.parent[rows]
        if (parent >= 0).any():
            sequences, source = np.unique(np.where(parent >= 0, parent, rows), return_inverse=True)
            encoded = self.encode(sequences)
        else:  # every item has its own input; inputs with steps still get units (a solution's own score)
            encoded, source = self.encode(rows), np.arange(len(rows))
            if not encoded or encoded[0].step_ends is None:
                return Batch(*layout.chunks(encoded)), rows
        scored_steps = np.array([len(e.step_ends or ()) for e in encoded])[source]
        position = np.where(parent >= 0, self.position[rows], -1)
        keep = position < scored_steps
        chunks, order = layout.chunks(encoded)
        batch = Batch(chunks, order, sources=torch.as_tensor(source[keep]), positions=torch.as_tensor(position[keep]))
        return batch, rows[keep]

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
            "items": self.with_steps(chosen),
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
