"""Memory of the training data path as the data grows: item text in memory (`TablesDir`) against
memory-mapped (`TablesDir(memory_map=True)`), each point in a fresh process.

Synthetic tables: N items of ~1 KB of text in groups of 8 (one query each), 4 comparisons per
item (random cycles). The child builds the data module with the MiniLM tokenizer and a 128-token
retrieval adapter, then draws 200 training batches of 8 groups (tokenised per batch). Reported:
setup time, batches per second, peak RSS (VmHWM) and anonymous RSS at the end (memory that is not
page cache: the mapped text is file-backed and the kernel can drop it at any time). For the mapped
runs the one-time conversion (parquet → Arrow file, cached) runs first in its own process; its
peak is reported apart.

    python benchmarks/data_memory.py [--quick]
Writes benchmarks/results/data_memory.json (or data_memory-quick.json).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import run_measurement, write_results  # noqa: E402


def write_tables(n_items: int, directory: Path) -> float:
    """Synthetic groups/items/comparisons parquet for n_items; returns the text size in MB."""
    from unirank.fitting import sample_cycle_pairs

    rng = np.random.default_rng(0)
    words = np.array("the of protein cell cancer gene patients risk study effect human model data level".split())
    base = [" ".join(rng.choice(words, 150)) for _ in range(1000)]  # ~1 KB each, varied
    n_groups = n_items // 8
    group = np.repeat(np.arange(n_groups), 8)
    items = pl.DataFrame(
        {
            "group_id": pl.Series(group).cast(pl.String),
            "item_id": pl.Series(np.tile(np.arange(8), n_groups)).cast(pl.String),
            "text": pl.Series(np.arange(n_groups * 8)).cast(pl.String)
            + " "
            + pl.Series(base * (n_items // 1000 + 1)).head(n_groups * 8),
            "label": (np.tile(np.arange(8), n_groups) == 0).astype(float),
        }
    )
    pairs = sample_cycle_pairs(8, k=4, seed=0)
    comparisons = pl.DataFrame(
        {
            "group_id": pl.Series(np.repeat(np.arange(n_groups), len(pairs))).cast(pl.String),
            "item_a": pl.Series(np.tile(pairs[:, 0], n_groups)).cast(pl.String),
            "item_b": pl.Series(np.tile(pairs[:, 1], n_groups)).cast(pl.String),
            "p": (np.tile(pairs[:, 0], n_groups) == 0).astype(float),
        }
    )
    groups = pl.DataFrame({"group_id": pl.Series(np.arange(n_groups)).cast(pl.String)}).with_columns(
        context=pl.lit("which protein raises the risk of cancer"), split=pl.lit("train")
    )
    directory.mkdir(parents=True, exist_ok=True)
    groups.write_parquet(directory / "groups.parquet")
    items.write_parquet(directory / "items.parquet", row_group_size=65536)
    comparisons.write_parquet(directory / "comparisons.parquet")
    return items["text"].str.len_bytes().sum() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = [20_000, 50_000] if args.quick else [100_000, 300_000, 1_000_000]
    points = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            text_mb = write_tables(n, Path(tmp) / str(n))
            for mapped in (False, True):
                point = {"items": n, "text_mb": text_mb, "memory_map": mapped}
                settings = dict(path=str(Path(tmp) / str(n)), mapped=mapped, cache=tmp + "/cache")
                if mapped:  # the one-time conversion to the mapped Arrow file, in its own process
                    point["convert_peak_rss_mb"] = run_measurement("data_path", **settings, batches=1)["peak_rss_mb"]
                point |= run_measurement("data_path", **settings, batches=200)
                points.append(point)
                print(
                    f"{n:>9,} items ({text_mb:7.0f} MB text) {'mapped' if mapped else 'memory':>7}: "
                    f"setup {point['setup_s']:6.1f} s, {point['batches_per_s']:6.1f} batches/s, "
                    f"peak RSS {point['peak_rss_mb']:7.0f} MB, anonymous {point['anon_rss_mb']:7.0f} MB"
                )
    write_results(
        "data_memory", args.quick, {"machine": f"{platform.machine()}, 2 CPU cores, no GPU", "points": points}
    )


if __name__ == "__main__":
    main()
