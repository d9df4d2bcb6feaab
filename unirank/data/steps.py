"""Steps as items: a scored position is the unit of training, fitting and calibration.

Process data stores a solution as one item with its `steps` (texts) and `step_labels` (1 correct,
0 wrong, null unlabelled), as PRMBench and PRM800K do. For training, every labelled step becomes an
item of its own in the solution's group: item_id `<solution>#step<k>`, `parent_id` the solution,
`position` k (0-based), `label` its step label. A step item has no text of its own: the adapter
encodes its parent once and reads the step's score at the step's position. Its label is an ordinary
label against the anchor (r ≡ 0), so the Thurstone fit, the stage-1 loss, the final calibration and
the head posterior treat steps as they treat any labelled item.
"""

from __future__ import annotations

import polars as pl

from unirank.data.tables import TableError, Tables

PARENT, POSITION = "parent_id", "position"


def with_step_items(tables: Tables, source: str = "the data") -> Tables:
    """`tables` with one item per labelled step appended (nothing changes without `step_labels`).

    Step items copy their solution's group, `_source_row` and `label_weight`; other items get a null
    `parent_id` and `position`. Raises TableError if a step's id is already an item's id."""
    items = tables.items
    if "step_labels" not in items.columns:
        return tables
    steps = (
        items.with_columns(pl.int_ranges(pl.col("step_labels").list.len()).alias(POSITION))
        .explode("step_labels", POSITION)
        .filter(pl.col("step_labels").is_not_null())
        .with_columns(
            (pl.col("item_id") + "#step" + pl.col(POSITION).cast(pl.String)).alias("item_id"),
            pl.col("item_id").alias(PARENT),
            pl.col("step_labels").cast(pl.Float64).alias("label"),
        )
    )
    keep = [c for c in items.columns if c not in ("step_labels", "first_stage_score")] + [PARENT, POSITION]
    solutions = items.with_columns(pl.lit(None, pl.String).alias(PARENT), pl.lit(None, pl.Int64).alias(POSITION))
    clash = steps.join(items.select("group_id", "item_id"), on=["group_id", "item_id"], how="semi")
    if clash.height:
        raise TableError(f"{source}: item id {clash['item_id'][0]!r} is also the id of a solution's step")
    combined = pl.concat(
        [solutions.drop("step_labels"), steps.select(keep).with_columns(pl.col(POSITION).cast(pl.Int64))],
        how="diagonal_relaxed",
    )
    return Tables(tables.groups, combined, tables.comparisons, tables.texts)
