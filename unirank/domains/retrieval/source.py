"""A BEIR folder as a data source: mined on first use, cached, read back on the next run."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, replace
from pathlib import Path

from unirank.data.sources import DataSource
from unirank.data.tables import TableError, Tables, read_tables
from unirank.mining.pipeline import MiningConfig, mine_beir, split_qrels, write_mined
from unirank.model.precision import encoding_precision


class MinedBeir(DataSource):
    """A BEIR folder, mined on first use (bi-encoder + FAISS, see `unirank.mining.pipeline`) with the
    settings of `mining` (every field of `MiningConfig`: k, negatives, candidates, unjudged_weight,
    precision, index, ...) and cached under `mining.cache_dir`, keyed by the settings (precision
    "auto" as this machine resolves it) and the
    folder's content (each file's size, mtime and SHA-1): an edited corpus, queries or qrels file is
    mined again, never read from a stale cache."""

    def __init__(
        self, beir_dir: str, split: str = "train", mining: MiningConfig = MiningConfig(validation_fraction=0.2)
    ):
        self.beir_dir, self.split, self.config = beir_dir, split, mining

    def load(self) -> Tables:
        resolved = replace(self.config, precision=encoding_precision(self.config.precision))
        settings = json.dumps([_content_key(Path(self.beir_dir)), self.split, asdict(resolved)], sort_keys=True)
        key = hashlib.sha1(settings.encode()).hexdigest()[:16]
        folder = Path(self.config.cache_dir or ".unirank-cache") / "mined" / key
        if (folder / "mining.json").exists():
            return read_tables(folder)
        tables, summary = mine_beir(self.beir_dir, self.split, self.config)
        write_mined(tables, summary, folder, qrels=split_qrels(self.beir_dir, self.split))
        recall = summary[f"recall@{self.config.k}"]
        print(
            f"mined {self.beir_dir} ({self.split}): recall@{self.config.k} = "
            f"{'n/a (no relevant document)' if recall is None else f'{recall:.3f}'}, {summary['items']} candidates, "
            f"{summary['comparisons']} comparisons → {folder}"
        )
        return tables


def _content_key(directory: Path) -> list:
    """(relative path, size, mtime, SHA-1) of every file under a data folder, in path order."""
    if not directory.is_dir():
        raise TableError(f"{directory}: not a folder (a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/)")
    key = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest = hashlib.sha1()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        stat = path.stat()
        key.append([str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns, digest.hexdigest()])
    return key
