"""Preference data as a data source: TRL, HH-RLHF or PandaLM files, grouped by prompt or by comparison."""

from __future__ import annotations

from typing import Literal

import polars as pl

from unirank.data.sources import DataSource
from unirank.data.tables import Tables
from unirank.domains.chat.readers import read_hh_rlhf, read_pandalm, read_preferences, read_prmbench_outcomes


class Preferences(DataSource):
    """Preference data: `format` trl (prompt/chosen/rejected JSONL), hh-rlhf (dialogue pairs,
    .jsonl[.gz]), pandalm (multi-annotator JSON) or prmbench (correct ≻ corrupted solutions, outcome
    pairs); groups split by a stable hash of the prompt. skip_invalid (trl): skip bad rows, counting
    and naming them in a warning, instead of stopping. Each comparison keeps its observed preference
    p (several annotators: their fraction, ties 0.5). groups: "prompt" (one group per prompt, a
    response encoded once per step however many comparisons it is in) or "comparison" (each
    comparison its own group with its own copy of both responses, as a pairwise trainer encodes
    them; the split stays by prompt)."""

    def __init__(
        self,
        path: str,
        format: str = "trl",
        validation_fraction: float = 0.1,
        test_fraction: float = 0.0,
        skip_invalid: bool = False,
        groups: Literal["prompt", "comparison"] = "prompt",
    ):
        readers = {
            "trl": read_preferences,
            "hh-rlhf": read_hh_rlhf,
            "pandalm": read_pandalm,
            "prmbench": read_prmbench_outcomes,
        }
        if groups not in ("prompt", "comparison"):
            raise ValueError(f"groups must be 'prompt' or 'comparison', got {groups!r}")
        self.groups = groups
        if format not in readers:
            raise ValueError(f"format must be one of {sorted(readers)}, got {format!r}")
        self.path, self.format = path, format
        if skip_invalid and format != "trl":
            raise ValueError("skip_invalid is supported for format 'trl'")
        self.validation_fraction, self.test_fraction = validation_fraction, test_fraction
        self.skip_invalid = skip_invalid
        self._read = readers[format]

    def load(self) -> Tables:
        tables = self.read()
        return comparisons_as_groups(tables) if self.groups == "comparison" else tables

    def read(self) -> Tables:
        """The file's tables, one group per prompt."""
        extra = {"skip_invalid": True} if self.skip_invalid else {}
        return self._read(self.path, self.validation_fraction, self.test_fraction, **extra)


def comparisons_as_groups(tables: Tables) -> Tables:
    """Each comparison becomes a group `<group_id>#<n>` holding its own copy of its two items (with
    the prompt's context, split and other group columns): a pairwise trainer's view of the data."""
    comps = tables.comparisons.with_row_index("_n").with_columns(
        pl.concat_str([pl.col("group_id"), pl.lit("#"), pl.col("_n").cast(pl.Utf8)]).alias("_pair")
    )
    groups = comps.select("group_id", "_pair").join(tables.groups, on="group_id", maintain_order="left")
    sides = [
        comps.select("group_id", "_pair", pl.col(side).alias("item_id")).join(
            tables.items, on=["group_id", "item_id"], maintain_order="left"
        )
        for side in ("item_a", "item_b")
    ]
    items = pl.concat(sides).sort("_pair", maintain_order=True)

    def regroup(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.drop("group_id").rename({"_pair": "group_id"})

    columns = [c for c in tables.comparisons.columns]
    return Tables(
        regroup(groups).select(tables.groups.columns),
        regroup(items).select(tables.items.columns),
        regroup(comps.drop("_n")).select(columns),
        tables.texts,
    )
