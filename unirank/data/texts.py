"""Item texts read by row: from an in-memory frame, or memory-mapped from an Arrow IPC file so a data
set larger than memory is read batch by batch (only the rows a batch takes are paged in)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from unirank.atomic import atomic_path

TEXT_COLUMNS = ("text", "steps")  # the item columns that hold text (steps: a process item's step list)
SOURCE_ROW = "_source_row"  # an item's row in its texts (the unsplit items table or the mapped file)


class FrameTexts:
    """The text columns of an in-memory items frame."""

    def __init__(self, frame: pl.DataFrame):
        self.frame = frame
        self.columns = [c for c in TEXT_COLUMNS if c in frame.columns]

    def take(self, column: str, rows: np.ndarray) -> list:
        return self.frame[column].gather(pl.Series(rows, dtype=pl.Int64)).to_list()

    def byte_lengths(self, column: str = "text") -> np.ndarray:
        return self.frame[column].str.len_bytes().to_numpy().astype(np.int64)


class MappedTexts:
    """The text columns of an uncompressed Arrow IPC file, memory-mapped: nothing is read until a
    row is taken, and taking reads each record batch separately (never concatenates the column)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        table = pa.ipc.open_file(pa.memory_map(str(self.path))).read_all()
        self.columns = [c for c in TEXT_COLUMNS if c in table.column_names]
        self._columns = {c: table.column(c) for c in self.columns}
        sizes = [len(chunk) for chunk in table.column(0).chunks]
        self._starts = np.cumsum([0, *sizes])

    def take(self, column: str, rows: np.ndarray) -> list:
        rows = np.asarray(rows, dtype=np.int64)
        chunk_of = np.searchsorted(self._starts, rows, side="right") - 1
        values: list = [None] * len(rows)
        data = self._columns[column]
        for chunk in np.unique(chunk_of):
            where = np.nonzero(chunk_of == chunk)[0]
            taken = data.chunk(int(chunk)).take(pa.array(rows[where] - self._starts[chunk])).to_pylist()
            for position, value in zip(where, taken):
                values[position] = value
        return values

    def byte_lengths(self, column: str = "text") -> np.ndarray:
        lengths = pc.binary_length(self._columns[column]).to_numpy(zero_copy_only=False)
        return np.nan_to_num(lengths.astype(np.float64)).astype(np.int64)


def map_items(path: str | Path, cache_dir: str | Path, batch_rows: int = 65536) -> tuple[pl.DataFrame, MappedTexts]:
    """Stream items.parquet (one row group at a time, never whole in memory) into an uncompressed
    Arrow IPC file under cache_dir/mapped/ (keyed by the file's path, size and mtime; written
    atomically; reused while the parquet is unchanged), `batch_rows` rows per record batch, and
    memory-map it.

    Returns the items without their text columns, with `_source_row` (the row in the mapped file),
    and the mapped text columns."""
    path = Path(path)
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    mapped = Path(cache_dir) / "mapped" / f"{key}.arrow"
    if not mapped.exists():
        with atomic_path(mapped) as tmp:  # large_string columns: pyarrow reads them without copies
            pl.scan_parquet(path).sink_ipc(
                tmp, compression="uncompressed", compat_level=pl.CompatLevel.oldest(), record_batch_size=batch_rows
            )
    texts = MappedTexts(mapped)
    schema = pl.scan_ipc(mapped).collect_schema()
    keep = [c for c in schema.names() if c not in TEXT_COLUMNS]
    items = pl.scan_parquet(path).select(keep).collect().with_row_index(SOURCE_ROW)
    return items, texts
