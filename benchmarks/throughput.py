"""Throughput, side by side in one run, each contender in a fresh process, interleaved in rounds
(two by default; the machine is noisy: the better run is reported, and for scoring the median over
rounds of the ratio of the two runs made back to back, with a 95 % bootstrap interval over rounds):

1. pair-only preferences (k = 1, HH-RLHF harmless, 256 tokens, 32 sequences per step, bf16 and
   fp32, dropout off): unirank's training loop against TRL's RewardTrainer on identical token sequences
   (benchmarks/train_speed.py), sequences/s and where unirank's step time goes;
2. shared comparisons (k = 8, SciFact, 128 tokens, 16 sequences per step): unirank's group batching
   (each candidate encoded once, k/2 random Hamiltonian cycles → 64 comparisons per step) against
   pair-wise encoding as TRL's RewardTrainer and sentence-transformers do it (8 comparisons per step,
   each encoding its two sides), comparisons/s;
3. scoring (1,500 SciFact (query, document) pairs, 128 tokens, the same exported model, bf16 and
   fp32): `unirank score`'s path against `CrossEncoder.predict` (benchmarks/scoring_speed.py),
   sequences/s and the largest difference between the two tools' scores.
Peak memory: each process's VmHWM.

    python benchmarks/throughput.py [--quick] [--only pair-only group scoring] [--rounds N] [--scifact DIR]
        [--training-precision bf16 fp32] [--scoring-precision bf16 fp32]
Writes benchmarks/results/throughput.json (or throughput-quick.json); --only (and a precision left
out) keeps the other rows of an earlier run. Each row records the machine it was measured on.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, ROOT, machine, run_measurement, run_module, write_results  # noqa: E402
from unirank.metrics.bootstrap import bootstrap_interval  # noqa: E402


def run(method: str, scifact: str, steps: int) -> dict:
    return run_measurement("group_step", method=method, scifact=scifact, steps=steps)


def interleaved(baseline: str, contender: str, measure, label: str, unit: str, rounds: int) -> dict[str, list[dict]]:
    """{tool: [its runs, one per round]}: the two back to back in every round, the baseline first in
    even rounds and second in odd ones (so neither always runs after the other), each measure(tool)
    a fresh process, so slow spells of the machine fall on both."""
    rows: dict[str, list] = {}
    for round_number in range(rounds):
        for tool in (baseline, contender) if round_number % 2 == 0 else (contender, baseline):
            row = measure(tool)
            rows.setdefault(tool, []).append(row)
            print(f"  {label} {tool:12s} {row[unit]:7.2f} {unit.replace('_per_s', '/s')}")
    return rows


def median_interval(values: list[float]) -> list[float]:
    """95 % bootstrap interval of the median of per-round values (rounds resampled)."""
    values = np.asarray(values, dtype=np.float64)
    return bootstrap_interval(lambda rounds: float(np.median(values[rounds])), len(values))


def group_versus_pairwise(scifact: str, steps: int, rounds: int) -> dict:
    measure = lambda method: run(method, scifact, steps)  # noqa: E731
    rows = interleaved("pairwise", "group", measure, "k=8", "comparisons_per_s", rounds)
    best = {m: max(r["comparisons_per_s"] for r in runs) for m, runs in rows.items()}
    ratio = best["group"] / best["pairwise"]
    return {"runs": rows, "best_comparisons_per_s": best, "ratio": ratio, "machine": machine()}


def pair_only(steps: int, warmup: int, rounds: int, precisions: list[str]) -> dict:
    result = {}
    for precision in precisions:
        args = ["--precision", precision, "--steps", str(steps), "--warmup", str(warmup)]
        rows = interleaved(
            "trl",
            "unirank",
            lambda tool: run_module("benchmarks.train_speed", "--tool", tool, *args),
            f"k=1 {precision}",
            "sequences_per_s",
            rounds,
        )
        best = {tool: max(runs, key=lambda r: r["sequences_per_s"]) for tool, runs in rows.items()}
        result[precision] = {
            "runs": rows,
            "best_sequences_per_s": {tool: r["sequences_per_s"] for tool, r in best.items()},
            "ratio": best["unirank"]["sequences_per_s"] / best["trl"]["sequences_per_s"],
            "unirank_phases_s": best["unirank"]["phases_s"],
            "peak_rss_mb": {tool: r["peak_rss_mb"] for tool, r in best.items()},
            "machine": machine(),
        }
    return result


def scoring(model: Path, n_pairs: int, scifact: str, rounds: int, precisions: list[str]) -> dict:
    result = {}
    for precision in precisions:
        args = ["--model", str(model), "--precision", precision, "--pairs", str(n_pairs), "--scifact", scifact]
        rows = interleaved(
            "crossencoder",
            "unirank",
            lambda tool: run_module("benchmarks.scoring_speed", "--tool", tool, *args),
            f"score {precision}",
            "sequences_per_s",
            rounds,
        )
        gap = max(abs(a - b) for a, b in zip(rows["unirank"][0]["scores"], rows["crossencoder"][0]["scores"]))
        for runs in rows.values():
            for row in runs:
                row.pop("scores")
        best = {tool: max(r["sequences_per_s"] for r in runs) for tool, runs in rows.items()}
        ratios = [u["sequences_per_s"] / c["sequences_per_s"] for u, c in zip(rows["unirank"], rows["crossencoder"])]
        result[precision] = {
            "runs": rows,
            "best_sequences_per_s": best,
            "ratio": statistics.median(ratios),  # within a round the two ran back to back
            "ratio_interval": median_interval(ratios),
            "round_ratios": ratios,
            "best_ratio": best["unirank"] / best["crossencoder"],
            "max_abs_score_difference": gap,
            "peak_rss_mb": {tool: max(r["peak_rss_mb"] for r in runs) for tool, runs in rows.items()},
            "machine": machine(),
        }
    return result


def scoring_model() -> Path:
    """An export of all-MiniLM-L6-v2 with a new head: speed does not depend on the training."""
    from unirank.adapters import RetrievalAdapter
    from unirank.module import UnirankModule
    from unirank.training.export import export_model

    folder = ROOT / "runs" / "throughput-model"
    if not (folder / "unirank.json").exists():
        export_model(UnirankModule(model="minilm", adapter=RetrievalAdapter(max_length=128)), folder, overwrite=True)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", choices=["pair-only", "group", "scoring"])
    parser.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--rounds", type=int, default=2, help="rounds of interleaved runs (default 2)")
    for part in ("training", "scoring"):
        parser.add_argument(f"--{part}-precision", nargs="+", choices=["bf16", "fp32"], default=["bf16", "fp32"],
                            help=f"{part}: the precisions to measure (others keep an earlier run's rows)")  # fmt: skip
    args = parser.parse_args()
    parts = args.only or ["pair-only", "group", "scoring"]
    out = RESULTS / ("throughput-quick.json" if args.quick else "throughput.json")
    report = json.loads(out.read_text()) if args.only and out.exists() else {}
    report.update({"benchmark": "throughput", "quick": args.quick})
    if "pair-only" in parts:
        measured = pair_only(*((2, 1) if args.quick else (10, 3)), args.rounds, args.training_precision)
        report["pair_only"] = report.get("pair_only", {}) | measured
        for precision, row in measured.items():
            print(f"pair-only {precision}: unirank / TRL {row['ratio']:.2f}x sequences per second")
    if "group" in parts:
        report["group_k8"] = group_versus_pairwise(args.scifact, 3 if args.quick else 12, args.rounds)
        print(f"k = 8: group batching / pair-wise encoding {report['group_k8']['ratio']:.1f}x comparisons per second")
    if "scoring" in parts:
        n_pairs = 200 if args.quick else 1500
        measured = scoring(scoring_model(), n_pairs, args.scifact, args.rounds, args.scoring_precision)
        report["scoring"] = report.get("scoring", {}) | measured
        for precision, row in measured.items():
            low, high = row["ratio_interval"]
            print(f"scoring {precision}: unirank / CrossEncoder.predict {row['ratio']:.2f}x [{low:.2f}, {high:.2f}]")
    report.pop("command", None)
    write_results("throughput", args.quick, report)


if __name__ == "__main__":
    main()
