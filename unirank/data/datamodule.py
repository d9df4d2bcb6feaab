"""The data module: tables from a source, split into train and validation groups (`data/groups.py`:
the index and sampling), served as group batches (`data/batching.py`: sampler and collator)."""

from __future__ import annotations

import warnings

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from unirank.adapters.base import CHARS_PER_TOKEN, Adapter, Encoded
from unirank.data.batching import BucketBatchSampler, GroupCollator
from unirank.data.groups import GroupDataset
from unirank.data.sources import DataSource
from unirank.data.steps import with_step_items
from unirank.data.tables import TableError, Tables
from unirank.data.texts import SOURCE_ROW, TEXT_COLUMNS, FrameTexts
from unirank.model.packing import Layout


class UnirankDataModule(L.LightningDataModule):
    """Tables from a source, split into train and validation groups, served as group batches.

    Args:
        source: where the tables come from (TablesDir, Preferences, MinedBeir, ...).
        batch_groups: groups per batch.
        batch_tokens: instead, groups per batch up to about this many tokens (each group's count
            estimated from its bytes at the tokens per byte measured on a sample of the split), so
            a step fills a GPU whatever the groups' lengths; None: batch_groups.
        max_items_per_group: items sampled from a larger group per step.
        chunk_size: sequences per forward chunk (each chunk is padded to its own longest; a
            padding-free model packs rows of its `packing.max_tokens` instead).
        seed: sampling seed (with the epoch and the group).
    """

    def __init__(
        self,
        source: DataSource,
        batch_groups: int = 8,
        batch_tokens: int | None = None,
        max_items_per_group: int = 16,
        chunk_size: int = 32,
        seed: int = 0,
    ):
        super().__init__()
        self.source = source
        self.batch_groups, self.max_items_per_group = batch_groups, max_items_per_group
        if batch_tokens is not None and batch_tokens < 1:
            raise ValueError(f"batch_tokens={batch_tokens} must be at least 1 (or null: batch_groups)")
        self.batch_tokens = batch_tokens
        self.chunk_size, self.seed = chunk_size, seed
        self.tables: Tables | None = None
        self.datasets: dict[str, GroupDataset] = {}
        self.tokenizer = None
        self.adapter: Adapter | None = None
        self.layout: Layout | None = None
        self._texts = None
        self._resume_at: tuple[int, int] | None = None

    def attach(self, tokenizer, adapter: Adapter, layout: Layout | None = None) -> None:
        """Tokenise with the model's tokenizer and adapter, and lay batches out as the model does
        (padded chunks of this module's chunk_size, or the model's packed rows). A UnirankModule's
        fit attaches its own (`unirank.training.callbacks.AttachEncoder`); loaders need it, setup does not."""
        first = self.adapter is None
        self.tokenizer, self.adapter = tokenizer, adapter
        layout = layout or Layout(tokenizer.pad_token_id)
        self.layout = Layout(layout.pad_id, self.chunk_size, layout.packing)
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
        index = with_step_items(index, getattr(self.source, "path", None) or type(self.source).__name__)
        for split in ("train", "validation", "test"):
            if split not in self.datasets:
                part = index.split(split)
                if part.groups.height:
                    self.datasets[split] = GroupDataset(part, texts, self.encode, self.max_items_per_group, self.seed)

        first, self._texts = self._texts is None, texts
        if first:
            self._warn_long_texts()
        train = self.datasets.get("train")
        if train is not None and not len(train.comp_a) and np.isnan(train.label).all():
            raise TableError(
                f"{self.source_name()}: the train split has no comparisons and no labels: there is nothing to train on"
            )

    def group_sources(self) -> dict[str, str] | None:
        """{group id: source name} for a `Mixture`'s tables (validation reports each source), else None."""
        groups = self.tables.groups if self.tables is not None else None
        if groups is None or "source" not in groups.columns:
            return None
        return dict(groups.select("group_id", "source").iter_rows())

    def source_name(self) -> str:
        """Where the tables come from, for error messages: the source's file or folder, else its class."""
        return (
            getattr(self.source, "path", None) or getattr(self.source, "beir_dir", None) or type(self.source).__name__
        )

    def _warn_long_texts(self) -> None:
        """Once both the texts (setup) and the adapter (attach) are known: how many texts the
        adapter will cut before tokenising."""
        if self.adapter is None or self._texts is None or self.adapter.reads_steps:
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

    def state_dict(self) -> dict:
        """Where training is within its epoch (saved in every checkpoint), so a run stopped
        mid-epoch (SIGTERM) resumes with the batches it had not trained on, in the same order."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {}
        done = trainer.fit_loop.epoch_loop.batch_progress.current.completed
        return {"epoch": trainer.current_epoch, "batches_done": int(done)}

    def load_state_dict(self, state: dict) -> None:
        if "epoch" in state:
            self._resume_at = (int(state["epoch"]), int(state["batches_done"]))

    def loader(self, dataset: GroupDataset, shuffle: bool) -> DataLoader:
        if self.tokenizer is None:
            raise RuntimeError("UnirankDataModule needs attach(tokenizer, adapter) before its loaders")
        weights = dataset.group_weight if shuffle else None
        tokens = None if self.batch_tokens is None else dataset.token_lengths()
        batches = BucketBatchSampler(
            dataset.lengths, self.batch_groups, self.seed, shuffle, weights, self.batch_tokens, tokens
        )
        if shuffle and self._resume_at is not None:
            batches.resume_at(*self._resume_at)
            self._resume_at = None
        return DataLoader(
            dataset,
            sampler=batches,
            batch_size=None,
            collate_fn=GroupCollator(dataset, self.layout),
        )

    def train_dataloader(self) -> DataLoader:
        if "train" not in self.datasets:
            raise ValueError("the data has no groups in the 'train' split")
        return self.loader(self.datasets["train"], shuffle=True)

    def val_dataloader(self):
        return self.loader(self.datasets["validation"], shuffle=False) if "validation" in self.datasets else []

    def test_dataloader(self):
        return self.loader(self.datasets["test"], shuffle=False) if "test" in self.datasets else []
