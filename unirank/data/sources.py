"""Where a data module's tables come from: chosen in YAML with class_path / init_args. Each
domain's own sources live with it (`unirank.domains.<domain>.source`); `TablesDir` reads the
canonical tables of any domain."""

from __future__ import annotations

from abc import ABC, abstractmethod

from unirank.data.tables import Tables, read_tables


class DataSource(ABC):
    """Produces validated tables (groups, items, comparisons) with a `split` per group."""

    @abstractmethod
    def load(self) -> Tables: ...


class TablesDir(DataSource):
    """A folder with groups.parquet, items.parquet and comparisons.parquet (e.g. `unirank mine` output).

    memory_map: keep the item text on disk (an Arrow file under cache_dir, memory-mapped) and read
    it per batch: for data whose text does not fit in memory."""

    def __init__(self, path: str, memory_map: bool = False, cache_dir: str = ".unirank-cache"):
        self.path, self.memory_map, self.cache_dir = path, memory_map, cache_dir

    def load(self) -> Tables:
        return read_tables(self.path, memory_map=self.memory_map, cache_dir=self.cache_dir)


_MOVED = {
    "Preferences": "unirank.domains.chat.source",
    "comparisons_as_groups": "unirank.domains.chat.source",
    "StepSolutions": "unirank.domains.process.source",
}


def __getattr__(name: str):
    """Names that moved to their domain in 0.2: they still resolve (a recipe's old class_path
    included), with a warning, for one release."""
    if name in _MOVED:
        import warnings
        from importlib import import_module

        warnings.warn(f"unirank.data.sources.{name} moved to {_MOVED[name]}.{name}", FutureWarning, stacklevel=2)
        return getattr(import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'unirank.data.sources' has no attribute {name!r}")
