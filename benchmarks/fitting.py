"""Benchmark the Thurstone / Bradley-Terry fit against choix, and at scale.

1. N = 10k items, M = 100k hard comparisons drawn from a Bradley-Terry model: unirank's
   `fit_bradley_terry` against `choix.opt_pairwise` (the same penalised objective, l2 = 2α) and
   `choix.ilsr_pairwise` (its own regularisation). Reported per method: median wall time, the
   log-likelihood and the penalised objective of its solution under the same penalty.
2. N = 1M items, M = 10M comparisons: `fit_thurstone` and `fit_bradley_terry`, wall time and peak
   resident memory, each run in a fresh process.

    python benchmarks/fitting.py            # full (about 10 minutes on 2 cores)
    python benchmarks/fitting.py --quick    # small sizes, a smoke check
Writes benchmarks/results/fitting.json (or fitting-quick.json).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit, log_expit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import run_measurement, write_results  # noqa: E402


def synthetic(n_items: int, n_comparisons: int, seed: int = 0):
    """Hard comparisons (winner, loser) between random pairs, outcomes drawn from BT on N(0, 1) scores."""
    rng = np.random.default_rng(seed)
    true = rng.standard_normal(n_items)
    a = rng.integers(0, n_items, n_comparisons)
    b = (a + rng.integers(1, n_items, n_comparisons)) % n_items
    won = rng.random(n_comparisons) < expit(true[a] - true[b])
    return np.where(won, a, b), np.where(won, b, a)


def bt_scores(latent, winners, losers, l2):
    log_likelihood = float(np.sum(log_expit(latent[winners] - latent[losers])))
    return log_likelihood, -log_likelihood + 0.5 * l2 * float(np.sum(latent**2))


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times, out


def against_choix(n_items, n_comparisons, alpha, repeats_unirank, repeats_choix):
    import choix

    from unirank.fitting import fit_bradley_terry

    winners, losers = synthetic(n_items, n_comparisons)
    data = list(zip(winners.tolist(), losers.tolist()))
    l2 = 2 * alpha
    methods = {
        "unirank.fit_bradley_terry": (
            lambda: fit_bradley_terry(winners, losers, n_items=n_items, l2=l2).latent,
            repeats_unirank,
        ),
        "choix.opt_pairwise": (lambda: choix.opt_pairwise(n_items, data, alpha=alpha), repeats_choix),
        "choix.ilsr_pairwise": (lambda: choix.ilsr_pairwise(n_items, data, alpha=alpha), repeats_choix),
    }
    rows = {}
    for name, (fn, repeats) in methods.items():
        median, times, latent = timed(fn, repeats)
        latent = latent - latent.mean()  # BT is shift-invariant; the penalty prefers mean 0
        log_likelihood, objective = bt_scores(latent, winners, losers, l2)
        rows[name] = {"median_s": median, "times_s": times, "log_likelihood": log_likelihood, "objective": objective}
        print(
            f"  {name:28s} {median:9.3f} s   log-lik {log_likelihood:14.4f}   objective {objective:14.4f}", flush=True
        )
    fastest_choix = min(("choix.opt_pairwise", "choix.ilsr_pairwise"), key=lambda k: rows[k]["median_s"])
    speedup = rows[fastest_choix]["median_s"] / rows["unirank.fit_bradley_terry"]["median_s"]
    print(f"  speed-up over the fastest choix method ({fastest_choix}): {speedup:.0f}x")
    return {
        "n_items": n_items,
        "n_comparisons": n_comparisons,
        "alpha": alpha,
        "l2": l2,
        "methods": rows,
        "fastest_choix": fastest_choix,
        "speedup_vs_fastest_choix": speedup,
    }


def at_scale(link, n_items, n_comparisons, repeats):
    drawn = dict(link=link, n=n_items, m=n_comparisons, outcomes="bradley-terry")  # as `synthetic` draws them
    runs = [run_measurement("fit_drawn", **drawn, seed=seed) for seed in range(repeats)]
    median = statistics.median(r["seconds"] for r in runs)
    peak = max(r["peak_rss_mb"] for r in runs)
    print(f"  {link:14s} N={n_items:,} M={n_comparisons:,}: median {median:.1f} s, peak RSS {peak:.0f} MB", flush=True)
    return {
        "link": link,
        "n_items": n_items,
        "n_comparisons": n_comparisons,
        "median_s": median,
        "peak_rss_mb": peak,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke check")
    args = parser.parse_args()
    small = (1_000, 10_000) if args.quick else (10_000, 100_000)
    large = (100_000, 1_000_000) if args.quick else (1_000_000, 10_000_000)
    repeats = 1 if args.quick else 3
    print(f"choix comparison: N={small[0]:,} M={small[1]:,}")
    versus = against_choix(*small, alpha=0.01, repeats_unirank=5, repeats_choix=repeats)
    print("at scale:")
    scale = [at_scale(link, *large, repeats) for link in ("thurstone", "bradley-terry")]
    report = {
        "benchmark": "fitting",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": _cpus()},
        "versus_choix": versus,
        "scale": scale,
    }
    write_results("fitting", args.quick, report)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
