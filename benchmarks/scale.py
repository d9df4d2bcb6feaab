"""How time and memory grow: mining (index build + batched search) with corpus size, and the
Thurstone fit with the number of comparisons. Each point runs in a fresh process (peak RSS).

Mining: N unit vectors (dim 384, clustered: 2,000 random centres plus noise, like real
embeddings), 1,000 queries, top 100, searched in batches of 256; exact `flat` and `ivf`
(nlist = 4√N, nprobe = nlist/16) with IVF's recall@100 against exact.
Fit: M comparisons among M/10 items (Thurstone, hard labels drawn from the model).

    python benchmarks/scale.py [--quick]
Writes benchmarks/results/scale.json and scale.png (or *-quick.*).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import run_measurement, write_results  # noqa: E402


def mining_curve(sizes: list[int]) -> list[dict]:
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            exact = None
            for kind in ("flat", "ivf"):
                out = f"{tmp}/{kind}-{n}.npy"
                row = run_measurement("index_clustered", n=n, kind=kind, out=out)
                hits = np.load(out)
                exact = hits if kind == "flat" else exact
                row["recall@100_vs_exact"] = float(np.mean([len(set(x) & set(y)) / 100 for x, y in zip(hits, exact)]))
                rows.append(row)
                print(
                    f"  mining N={n:>9,} {kind:4s} build {row['build_s']:7.1f} s  search {row['search_s']:7.2f} s"
                    f"  recall@100 {row['recall@100_vs_exact']:.3f}  peak RSS {row['peak_rss_mb']:6.0f} MB"
                    f" (data {row['rss_after_data_mb']:.0f} MB)",
                    flush=True,
                )
    return rows


def fit_curve(sizes: list[int]) -> list[dict]:
    rows = []
    for m in sizes:
        row = run_measurement("fit_drawn", link="thurstone", n=m // 10, m=m, seed=0, outcomes="thurstone")
        rows.append(row)
        print(
            f"  fit M={m:>11,}  {row['seconds']:7.2f} s  peak RSS {row['peak_rss_mb']:6.0f} MB"
            f" (data {row['rss_before_fit_mb']:.0f} MB)",
            flush=True,
        )
    return rows


def _panel(axis, x: list, curves: dict[str, list], memory: list, xlabel: str, title: str) -> None:
    """Seconds (one line per curve, log-log) and peak memory on a second axis."""
    for label, seconds in curves.items():
        axis.plot(x, seconds, marker="o", label=label)
    memory_axis = axis.twinx()
    memory_axis.plot(x, memory, color="grey", linestyle="--", marker="s", label="peak RSS (MB)")
    axis.set(xscale="log", yscale="log", xlabel=xlabel, ylabel="seconds", title=title)
    memory_axis.set_ylabel("peak RSS (MB)")
    axis.legend(loc="upper left", fontsize=8)
    memory_axis.legend(loc="lower right", fontsize=8)


def plot(mining: list[dict], fit: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    flat = [r for r in mining if r["kind"] == "flat"]
    curves = {
        f"{kind}: build + search": [r["build_s"] + r["search_s"] for r in mining if r["kind"] == kind]
        for kind in ("flat", "ivf")
    }
    _panel(left, [r["n"] for r in flat], curves, [r["peak_rss_mb"] for r in flat], "corpus vectors",
           "mining: 1,000 queries, top 100")  # fmt: skip
    _panel(right, [r["comparisons"] for r in fit], {"Thurstone fit": [r["seconds"] for r in fit]},
           [r["peak_rss_mb"] for r in fit], "comparisons (items = comparisons / 10)", "Thurstone fit")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    corpus_sizes = [10_000, 30_000] if args.quick else [10_000, 100_000, 1_000_000]
    comparison_sizes = [100_000, 300_000] if args.quick else [100_000, 1_000_000, 10_000_000]
    print("mining:")
    mining = mining_curve(corpus_sizes)
    print("fit:")
    fit = fit_curve(comparison_sizes)
    report = {
        "benchmark": "scale",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "cpus": 2},
        "mining": mining,
        "fit": fit,
    }
    plot(mining, fit, write_results("scale", args.quick, report).with_suffix(".png"))


if __name__ == "__main__":
    main()
