"""Benchmark mining: unirank against sentence-transformers' mine_hard_negatives, and index scaling.

1. SciFact train (../shared/data/scifact), encoder `minilm`, k = 100 hits, 7 negatives per query,
   false-negative margin 95% of the positive's score (ST: relative_margin=0.05), FAISS on both
   sides. Each contender runs in a fresh process (wall time, peak memory): ST once; unirank in
   fp32 (the settings coincide with ST's: the negatives are compared), in bf16 (its default), and
   in bf16 again (the second run reads the cached embeddings). Overlap of the negative sets is
   reported for queries with one positive, where the two filters are the same.
2. The corpus's own embeddings, copied with small noise (σ = 0.01 per dimension) up to N = 200k
   rows, searched by its queries: exact flat search against HNSW and IVF, recall@100 of each,
   build and search time, and the peak RSS of batched search.

    python benchmarks/mining.py [--quick] [--scifact ../shared/data/scifact]
Writes benchmarks/results/mining.json (or mining-quick.json).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, run_measurement, write_results  # noqa: E402


def versus_sentence_transformers(beir: str, k: int, negatives: int) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        st = run_measurement("mine_st", beir=beir, k=k, negatives=negatives)
        ours = dict(beir=beir, k=k, negatives=negatives, cache=cache)
        same = run_measurement("mine_unirank", **ours, precision="fp32")
        first = run_measurement("mine_unirank", **ours, precision="bf16")
        second = run_measurement("mine_unirank", **ours, precision="bf16")

    def agreement(ours: dict) -> tuple[float, int, int]:
        shared = [q for q in ours if q in st["negatives"]]
        jaccard = [
            len(set(ours[q]) & set(st["negatives"][q])) / max(len(set(ours[q]) | set(st["negatives"][q])), 1)
            for q in shared
        ]
        return sum(jaccard) / max(len(jaccard), 1), sum(ours[q] == st["negatives"][q] for q in shared), len(shared)

    jaccard_fp32, identical_fp32, compared = agreement(same["negatives"])
    jaccard_bf16, identical_bf16, _ = agreement(first["negatives"])
    report = {
        "k": k,
        "negatives": negatives,
        "sentence_transformers": {key: st[key] for key in ("seconds", "peak_rss_mb", "queries", "rows_out")},
        "unirank_fp32_first": {key: same[key] for key in ("seconds", "peak_rss_mb", "recall", "timings")},
        "unirank_first": {key: first[key] for key in ("seconds", "peak_rss_mb", "recall", "timings")},
        "unirank_cached": {key: second[key] for key in ("seconds", "peak_rss_mb", "timings")},
        "time_ratio_fp32_first": same["seconds"] / st["seconds"],
        "time_ratio_first": first["seconds"] / st["seconds"],
        "time_ratio_cached": second["seconds"] / st["seconds"],
        "single_positive_queries_compared": compared,
        "fp32": {"mean_jaccard_of_negatives": jaccard_fp32, "identical_negative_lists": identical_fp32},
        "bf16": {"mean_jaccard_of_negatives": jaccard_bf16, "identical_negative_lists": identical_bf16},
    }
    print(f"  sentence-transformers  {st['seconds']:7.1f} s  peak {st['peak_rss_mb']:6.0f} MB")
    print(
        f"  unirank fp32 (first)   {same['seconds']:7.1f} s  peak {same['peak_rss_mb']:6.0f} MB"
        f"  ratio {report['time_ratio_fp32_first']:.2f}  recall@{k} {same['recall']:.3f}"
    )
    print(
        f"  unirank bf16 (first)   {first['seconds']:7.1f} s  peak {first['peak_rss_mb']:6.0f} MB"
        f"  ratio {report['time_ratio_first']:.2f}  recall@{k} {first['recall']:.3f}"
    )
    print(
        f"  unirank bf16 (cached)  {second['seconds']:7.1f} s  peak {second['peak_rss_mb']:6.0f} MB"
        f"  ratio {report['time_ratio_cached']:.2f}"
    )
    print(
        f"  negatives vs ST over {compared} single-positive queries: fp32 mean Jaccard {jaccard_fp32:.3f}"
        f" ({identical_fp32} identical lists), bf16 {jaccard_bf16:.3f} ({identical_bf16} identical)"
    )
    return report


def index_scaling(beir: str, sizes: list[int]) -> list[dict]:
    import numpy as np

    from unirank.domains.retrieval.readers import read_beir
    from unirank.mining.encode import Encoder

    data = read_beir(beir, "train")
    encoder = Encoder.load("minilm")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        np.save(
            f"{tmp}/docs.npy",
            encoder.encode(
                list(data.corpus.values()), cache_dir=ROOT / ".unirank-cache/embeddings", show_progress_bar=False
            ),
        )
        np.save(
            f"{tmp}/queries.npy",
            encoder.encode(
                list(data.queries.values()),
                role="query",
                cache_dir=ROOT / ".unirank-cache/embeddings",
                show_progress_bar=False,
            ),
        )
        for n in sizes:
            results = {}
            for kind in ("flat", "hnsw", "ivf"):
                out = f"{tmp}/{kind}-{n}.npy"
                results[kind] = run_measurement(
                    "index_copies", docs=f"{tmp}/docs.npy", queries=f"{tmp}/queries.npy", n=n, kind=kind, out=out
                )
                results[kind]["rows"] = np.load(out)
            exact = results["flat"]["rows"]
            for kind, result in results.items():
                hits = result.pop("rows")
                result["recall@100_vs_exact"] = float(
                    np.mean([len(set(a) & set(b)) / 100 for a, b in zip(hits, exact)])
                )
                result["n"] = n
                rows.append(result)
                print(
                    f"  N={n:>7,} {kind:5s} build {result['build_s']:6.1f} s  search {result['search_s']:6.2f} s"
                    f"  recall@100 {result['recall@100_vs_exact']:.3f}  peak RSS {result['peak_rss_mb']:.0f} MB"
                    f" (after build {result['rss_after_build_mb']:.0f} MB)"
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    args = parser.parse_args()
    print("SciFact train, minilm, k=100, 7 negatives:" if not args.quick else "demo BEIR, k=10, 3 negatives:")
    beir = str(ROOT / "data" / "demo-beir") if args.quick else args.scifact
    versus = versus_sentence_transformers(beir, 10 if args.quick else 100, 3 if args.quick else 7)
    print("index scaling (corpus embeddings copied with noise, its queries, 256-query batches):")
    scaling = index_scaling(beir, [20_000] if args.quick else [20_000, 200_000])
    report = {
        "benchmark": "mining",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "cpus": 2},
        "versus_sentence_transformers": versus,
        "index_scaling": scaling,
    }
    write_results("mining", args.quick, report)


if __name__ == "__main__":
    main()
