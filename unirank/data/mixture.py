"""Several data sources of one domain trained as one data set (training for breadth).

Each source's group ids are prefixed with its name ("hh/…", "pandalm/…"), so the sources never
share a group; their items and comparisons are concatenated, so one Thurstone fit places every
source's items on one scale (the anchor, P(item ≻ anchor) = Φ(s), is shared by all). The groups
table gains `source` (validation reports each source's figures: `val/<source>/…`) and, given
weights, `sampling_weight`: a training epoch then draws as many groups as the split holds, source
s's groups with total probability w_s / Σ w (uniform within a source, with replacement), so a small
source can weigh as much as a large one. Without weights every group is drawn once per epoch.
"""

from __future__ import annotations

import polars as pl

from unirank.data.sources import DataSource
from unirank.data.tables import TableError, Tables, validate


class Mixture(DataSource):
    """Several sources of one domain (BEIR folders, preference files, mined tables...) as one.

    Args:
        sources: the data sources, each as a recipe's `data.source` (class_path / init_args).
        names: a name per source (default source0, source1, ...): the group-id prefix and the name
            of its validation figures.
        weights: sampling weight per source (default: every group once per epoch, so the sources
            weigh in proportion to their sizes).
    """

    def __init__(self, sources: list[DataSource], names: list[str] | None = None, weights: list[float] | None = None):
        names = names or [f"source{i}" for i in range(len(sources))]
        if not sources:
            raise ValueError("Mixture needs at least one source")
        if len(names) != len(sources) or len(set(names)) != len(names):
            raise ValueError(f"Mixture: {len(sources)} sources need as many distinct names, got {names}")
        if weights is not None and (len(weights) != len(sources) or not all(w > 0 for w in weights)):
            raise ValueError(f"Mixture: weights must be one positive number per source, got {weights}")
        self.sources, self.names, self.weights = sources, names, weights

    def load(self) -> Tables:
        parts = []
        for index, (name, source) in enumerate(zip(self.names, self.sources)):
            tables = source.load()
            if tables.texts is not None:
                raise TableError(f"Mixture source {name!r}: memory-mapped tables cannot be mixed; read them plainly")
            prefixed = (pl.lit(f"{name}/") + pl.col("group_id")).alias("group_id")
            groups = tables.groups.with_columns(prefixed, pl.lit(name).alias("source"))
            if self.weights:  # without weights every group is drawn once per epoch, as in one source
                train_groups = max(1, tables.groups.filter(pl.col("split") == "train").height)
                groups = groups.with_columns(pl.lit(self.weights[index] / train_groups).alias("sampling_weight"))
            parts.append((groups, tables.items.with_columns(prefixed), tables.comparisons.with_columns(prefixed)))
        frames = [pl.concat([part[k] for part in parts], how="diagonal_relaxed") for k in range(3)]
        return validate(Tables(*frames), f"mixture of {', '.join(self.names)}")
