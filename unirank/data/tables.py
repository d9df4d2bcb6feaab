"""The canonical tables (groups, items, comparisons, targets): schemas, validation, parquet I/O.

Every check names the source (a file), the row and the problem, so a bad row never turns silently
into a wrong number. The meaning of each column: docs/math.md, "Tables".
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from unirank.atomic import recover_folder, write_parquet
from unirank.data.texts import MappedTexts, map_items
from unirank.fitting import ANCHOR_ITEM

GROUPS = {"group_id": pl.String, "context": pl.String, "category": pl.String, "split": pl.String}
ITEMS = {"group_id": pl.String, "item_id": pl.String, "text": pl.String, "label": pl.Float64}
COMPARISONS = {
    "group_id": pl.String,
    "item_a": pl.String,
    "item_b": pl.String,
    "p": pl.Float64,
    "weight": pl.Float64,
    "source": pl.String,
}
REQUIRED = {
    "groups": ("group_id", "context"),
    "items": ("group_id", "item_id", "text"),
    "comparisons": ("group_id", "item_a", "item_b"),
}


NUMBERS = ("p", "weight", "label", "label_weight", "first_stage_score")
"""Numeric columns: read only from numeric parquet types (never from strings or booleans)."""

MAX_WEIGHT = 1e6
"""The largest comparison or label weight accepted: weights are counts of annotators or relative
importances; beyond this a weight is a unit or typing mistake that would swamp every other row (and
overflow the loss in low precision)."""

SPLITS = ("train", "validation", "test")
"""The group splits unirank reads; any other value is an input error, never silently dropped."""


class TableError(ValueError):
    """A table failed validation; the message names the source, the row and the problem."""


@dataclass(frozen=True)
class Tables:
    """groups, items and comparisons of one data set, validated against each other.

    A chat context may be a list of {role, content} messages; it is stored as its JSON text.
    texts: the items' text columns memory-mapped (`read_tables(..., memory_map=True)`); `items` then
    holds no text but `_source_row`, each item's row in `texts`.
    """

    groups: pl.DataFrame
    items: pl.DataFrame
    comparisons: pl.DataFrame
    texts: MappedTexts | None = None

    def item_contexts(self) -> list[str]:
        """The group context of every row of `items`, in the same order."""
        return self.items.join(
            self.groups.select("group_id", "context"), on="group_id", how="left", maintain_order="left"
        )["context"].to_list()

    def indexed_comparisons(self) -> pl.DataFrame:
        """The comparisons between real items (anchor comparisons left out), with `_a` and `_b`: the
        row numbers in `items` of item_a and item_b. Row order follows the comparisons table."""
        rows = self.items.select("group_id", "item_id").with_row_index("_row")
        real = self.comparisons.filter((pl.col("item_a") != ANCHOR_ITEM) & (pl.col("item_b") != ANCHOR_ITEM))
        return real.join(
            rows.rename({"item_id": "item_a", "_row": "_a"}), on=["group_id", "item_a"], maintain_order="left"
        ).join(rows.rename({"item_id": "item_b", "_row": "_b"}), on=["group_id", "item_b"], maintain_order="left")

    def split(self, name: str) -> Tables:
        """The tables restricted to the groups of one split."""
        ids = self.groups.filter(pl.col("split") == name)["group_id"]
        keep = pl.col("group_id").is_in(ids.implode())
        return Tables(self.groups.filter(keep), self.items.filter(keep), self.comparisons.filter(keep), self.texts)

    def write(self, directory: str | Path) -> None:
        """Write groups/items/comparisons.parquet into `directory`, each atomically."""
        if self.texts is not None:
            raise ValueError("memory-mapped tables are read-only: write the source tables instead")
        directory = Path(directory)
        for name in ("groups", "items", "comparisons"):
            write_parquet(getattr(self, name), directory / f"{name}.parquet")


def _fail(source: str, row: int | None, problem: str) -> None:
    where = f"{source}, row {row}" if row is not None else source
    raise TableError(f"{where}: {problem}")


def conform(frame: pl.DataFrame, table: str, source: str, external: tuple[str, ...] = ()) -> pl.DataFrame:
    """Check required columns and non-null ids, add optional columns, cast to the schema.
    external: columns held elsewhere (memory-mapped text), neither required nor added."""
    schema = {"groups": GROUPS, "items": ITEMS, "comparisons": COMPARISONS}[table]
    schema = {c: t for c, t in schema.items() if c not in external}
    required = [c for c in REQUIRED[table] if c not in external]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        _fail(source, None, f"missing column(s) {missing} in the {table} table (it has {frame.columns})")
    defaults = {"p": 1.0, "weight": 1.0, "source": "data", "split": "train"}
    frame = frame.with_columns(
        pl.lit(defaults.get(c), dtype=t).alias(c) for c, t in schema.items() if c not in frame.columns
    )
    for column in required:
        nulls = frame[column].is_null()
        if nulls.any():
            _fail(source, int(nulls.arg_true()[0]), f"{column} is missing (null)")
    for column in NUMBERS:
        if column in frame.columns and not (frame[column].dtype.is_numeric() or frame[column].dtype == pl.Null):
            _fail(source, None, f"{column} has type {frame[column].dtype}: it must hold numbers (a string or a "
                                "boolean is never read as one)")  # fmt: skip
    try:
        frame = frame.with_columns(pl.col(c).cast(t, strict=True) for c, t in schema.items())
    except pl.exceptions.PolarsError as error:
        _fail(source, None, f"a column has the wrong type: {error}")
    return frame.select(*schema, *[c for c in frame.columns if c not in schema])


def validate(tables: Tables, source: str) -> Tables:
    """Conform each table and check them against each other; return the conformed tables."""
    groups = conform(tables.groups, "groups", f"{source} (groups)")
    items = conform(tables.items, "items", f"{source} (items)", external=() if tables.texts is None else ("text",))
    comparisons = validate_comparisons(tables.comparisons, f"{source} (comparisons)")
    _unique(groups, ["group_id"], f"{source} (groups)")
    reserved = items.with_row_index("_row").filter(pl.col("item_id") == ANCHOR_ITEM)
    if reserved.height:
        _fail(f"{source} (items)", reserved["_row"][0], f"item_id {ANCHOR_ITEM!r} is reserved for the anchor")
    _unique(items, ["group_id", "item_id"], f"{source} (items)")
    _known(items, groups, ["group_id"], "group_id", f"{source} (items)", "unknown group")
    for side in ("item_a", "item_b"):
        real = comparisons.with_row_index("_row").filter(pl.col(side) != ANCHOR_ITEM)
        _known(
            real.rename({side: "item_id"}),
            items,
            ["group_id", "item_id"],
            "item_id",
            f"{source} (comparisons)",
            f"{side} names an unknown item",
            row_column="_row",
        )
    bad = groups.with_row_index("_row").filter(~pl.col("split").is_in(list(SPLITS)) | pl.col("split").is_null())
    if bad.height:
        _fail(f"{source} (groups)", bad["_row"][0], f"split={bad['split'][0]!r} is not one of {', '.join(SPLITS)}")
    bad = items.with_row_index("_row").filter(~pl.col("label").is_between(0, 1) & pl.col("label").is_not_null())
    if bad.height:
        _fail(f"{source} (items)", bad["_row"][0], f"label={bad['label'][0]} is outside [0, 1]")
    if "label_weight" in items.columns:
        _check_weights(items, "label_weight", f"{source} (items)")
    if "first_stage_score" in items.columns:
        score = pl.col("first_stage_score")
        bad = items.with_row_index("_row").filter(score.is_nan() | score.is_infinite())
        if bad.height:
            _fail(f"{source} (items)", bad["_row"][0], f"first_stage_score={bad['first_stage_score'][0]} is not finite")

    _warn_degenerate(comparisons, items, source)
    empty = groups.join(items, on="group_id", how="anti")
    if empty.height:
        row = groups["group_id"].to_list().index(empty["group_id"][0])
        _fail(f"{source} (groups)", row, f"group {empty['group_id'][0]!r} has no items")
    return Tables(groups, items, comparisons, tables.texts)


def validate_comparisons(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """The comparisons table on its own, conformed: no item compared with itself, p a probability,
    weights finite in (0, MAX_WEIGHT]; comparisons that are all ties are warned of."""
    comparisons = conform(frame, "comparisons", source)
    bad = comparisons.with_row_index("_row").filter(pl.col("item_a") == pl.col("item_b"))
    if bad.height:
        _fail(source, bad["_row"][0], f"item {bad['item_a'][0]!r} is compared with itself")
    bad = comparisons.with_row_index("_row").filter(
        ~((pl.col("p") >= 0) & (pl.col("p") <= 1)) | pl.col("p").is_null() | pl.col("p").is_nan()
    )
    if bad.height:
        _fail(source, bad["_row"][0], f"p={bad['p'][0]} is not a probability in [0, 1]")
    _check_weights(comparisons, "weight", source)
    real = comparisons.filter((pl.col("item_a") != ANCHOR_ITEM) & (pl.col("item_b") != ANCHOR_ITEM))
    if real.height and (real["p"] == 0.5).all():
        warnings.warn(
            f"{source}: all {real.height} comparisons are ties (p = 0.5): they say the items are equal and "
            "nothing about which is better",
            stacklevel=3,
        )
    return comparisons


def _check_weights(frame: pl.DataFrame, column: str, source: str) -> None:
    weight = pl.col(column).cast(pl.Float64)
    # polars orders NaN above every number, so NaN > 0 holds: NaN is named on its own
    bad = frame.with_row_index("_row").filter(
        ~(weight > 0) | weight.is_null() | weight.is_nan() | (weight > MAX_WEIGHT)
    )
    if bad.height:
        _fail(source, bad["_row"][0], f"{column}={bad[column][0]} is not a finite number in (0, {MAX_WEIGHT:g}]")


def _warn_degenerate(comparisons: pl.DataFrame, items: pl.DataFrame, source: str) -> None:
    """Data that is valid but says little, named with its count: empty item texts (kept: an empty
    response is a response, and real preference sets hold some) and comparisons between two texts that differ in
    white space only."""
    if "text" in items.columns:
        blank = items.with_row_index("_row").filter(pl.col("text").str.strip_chars() == "")
        if blank.height:
            warnings.warn(
                f"{source}: {blank.height} item(s) with an empty text (the first: row {blank['_row'][0]}, "
                f"{blank['item_id'][0]!r}); each is scored as an empty response",
                stacklevel=3,
            )
    real = comparisons.filter((pl.col("item_a") != ANCHOR_ITEM) & (pl.col("item_b") != ANCHOR_ITEM))
    if not real.height or "text" not in items.columns:
        return
    folded = items.select("group_id", "item_id", pl.col("text").str.replace_all(r"\s+", " ").str.strip_chars())
    pairs = real.join(folded.rename({"item_id": "item_a", "text": "_a"}), on=["group_id", "item_a"]).join(
        folded.rename({"item_id": "item_b", "text": "_b"}), on=["group_id", "item_b"]
    )
    same = pairs.filter(pl.col("_a") == pl.col("_b"))
    if same.height:
        warnings.warn(
            f"{source}: {same.height} comparison(s) between texts that differ in white space only (the first: "
            f"{same['item_a'][0]!r} and {same['item_b'][0]!r} in group {same['group_id'][0]!r}): a preference "
            "between them is noise",
            stacklevel=3,
        )


def _unique(frame: pl.DataFrame, key: list[str], source: str) -> None:
    repeated = ~frame.select(pl.struct(key).is_first_distinct()).to_series()
    if repeated.any():
        row = int(repeated.arg_true()[0])
        _fail(source, row, f"duplicate id {frame.row(row, named=True)[key[-1]]!r}")


def _known(frame, reference, key, column, source, problem, row_column=None) -> None:
    indexed = frame if row_column else frame.with_row_index("_row")
    unknown = indexed.join(reference.select(key).unique(), on=key, how="anti").sort("_row")
    if unknown.height:
        _fail(source, unknown["_row"][0], f"{problem} {unknown[column][0]!r}")


def tables_from_rows(
    groups: list[dict], items: list[dict], comparisons: list[dict], source: str, item_columns: dict | None = None
) -> Tables:
    """Build the three tables from row dicts with the canonical schemas (plus `item_columns`: extra
    item columns and their types) and validate them."""
    try:
        tables = Tables(
            groups=pl.DataFrame(groups, schema=GROUPS),
            items=pl.DataFrame(items, schema={**ITEMS, **(item_columns or {})}),
            comparisons=pl.DataFrame(comparisons, schema=COMPARISONS),
        )
    except (pl.exceptions.PolarsError, TypeError, ValueError) as error:
        raise TableError(f"{source}: a field has a value of the wrong type ({error})") from None
    return validate(tables, source)


def read_tables(directory: str | Path, memory_map: bool = False, cache_dir: str | Path = ".unirank-cache") -> Tables:
    """Read and validate groups/items/comparisons.parquet from `directory`.

    memory_map: the items' text is streamed into an Arrow file under cache_dir and memory-mapped
    (see unirank.data.texts.map_items), so item text larger than memory is read per batch."""
    directory = Path(directory)
    recover_folder(directory)  # a folder swap killed halfway (see unirank.atomic.atomic_path)
    frames, texts = {}, None
    for name in ("groups", "items", "comparisons"):
        path = directory / f"{name}.parquet"
        if not path.exists():
            raise TableError(f"{path}: file not found (a data folder needs groups, items and comparisons .parquet)")
        try:
            if name == "items" and memory_map:
                frames[name], texts = map_items(path, cache_dir)
                if "text" not in texts.columns:
                    raise TableError(f"{path}: missing column(s) ['text'] in the items table")
            else:
                frames[name] = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as error:
            raise TableError(f"{path}: cannot read as parquet: {error}") from None
    return validate(Tables(**frames, texts=texts), str(directory))
