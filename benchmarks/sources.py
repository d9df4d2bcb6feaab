"""Data sources that exist to give a contender another tool's view of the data (not unirank features)."""

from __future__ import annotations

import polars as pl

from unirank.data.tables import Tables
from unirank.domains.chat.source import Preferences


class MajorityPreferences(Preferences):
    """Preferences as a pairwise trainer such as TRL's sees them: only decided comparisons, p = 1 for
    the majority's side, weight 1 (the annotators' fraction and count dropped)."""

    def read(self) -> Tables:
        tables = super().read()
        decided = tables.comparisons.filter(pl.col("p") != 0.5).with_columns(
            (pl.col("p") > 0.5).cast(pl.Float64).alias("p"), pl.lit(1.0).alias("weight")
        )
        return Tables(tables.groups, tables.items, decided, tables.texts)
