"""Training throughput: unirank's group batches against pair-wise encoding, same model and data.

Both train all-MiniLM-L6-v2 (bf16 autocast, AdamW) on SciFact (query, document) inputs truncated
to 128 tokens, 16 sequences per optimiser step:
- group batching (unirank): one query's 16 candidates, each encoded once; the comparisons among
  them are the union of k/2 random Hamiltonian cycles (k = 8 → 64 comparisons per step);
- pair-wise encoding (as TRL's RewardTrainer and sentence-transformers do it): 8 comparisons per
  step, each encoding its two sides (16 sequences).
Reported: comparisons per second (median over steps after a warm-up) and peak RSS, each method in
a fresh process.

    python benchmarks/throughput.py [--quick] [--scifact ../shared/data/scifact]
Writes benchmarks/results/throughput.json (or throughput-quick.json).
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, run_child, write_results  # noqa: E402

CHILD = """
import json, statistics, sys, time
import numpy as np, torch
sys.path.insert(0, {root!r})
from benchmarks.common import peak_rss_mb
from unirank.adapters import RetrievalAdapter
from unirank.adapters.base import pad_chunks
from unirank.data.readers import read_beir
from unirank.fitting import sample_cycle_pairs
from unirank.losses import bradley_terry_loss
from unirank.module import UnirankModule

torch.manual_seed(0)
beir = read_beir({scifact!r}, "train")
docs = list(beir.corpus.values())
queries = [beir.queries[q] for q in sorted(beir.qrels)]
module = UnirankModule(model="minilm", adapter=RetrievalAdapter(max_length=128), chunk_size=16)
module.scorer.train()
optimizer = torch.optim.AdamW(module.parameters(), lr=2e-5)
rng = np.random.default_rng(0)
pairs = torch.as_tensor(sample_cycle_pairs(16, k=8, seed=0))

def step(i):
    query = queries[i % len(queries)]
    chosen = [docs[j] for j in rng.integers(0, len(docs), 16)]
    if {method!r} == "group":
        encoded = module.adapter.encode(module.tokenizer, [query] * 16, chosen)
        a, b = pairs[:, 0], pairs[:, 1]
    else:  # pair-wise: 8 comparisons, sides encoded separately: [a0..a7, b0..b7]
        encoded = module.adapter.encode(module.tokenizer, [query] * 16, chosen)
        a, b = torch.arange(8), torch.arange(8, 16)
    chunks, order = pad_chunks(encoded, module.tokenizer.pad_token_id, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        scores = module.score_batch({{"chunks": chunks, "order": order}})
    p = torch.ones(len(a))
    loss = bradley_terry_loss(scores, a, b, p, torch.ones(len(a)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return len(a)

times = []
for i in range({steps} + 1):
    start = time.perf_counter()
    comparisons = step(i)
    if i:
        times.append(time.perf_counter() - start)
median = statistics.median(times)
print(json.dumps({{"method": {method!r}, "comparisons_per_step": comparisons, "sequences_per_step": 16,
                  "median_step_s": median, "comparisons_per_s": comparisons / median,
                  "peak_rss_mb": peak_rss_mb()}}))
"""


def run(method: str, scifact: str, steps: int) -> dict:
    return run_child(CHILD.format(root=str(ROOT), scifact=scifact, method=method, steps=steps))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    args = parser.parse_args()
    steps = 3 if args.quick else 12
    rows = {}
    for method in ("pairwise", "group", "pairwise", "group"):  # interleaved, twice: the machine is noisy
        row = run(method, args.scifact, steps)
        rows.setdefault(method, []).append(row)
        print(
            f"  {method:9s} {row['comparisons_per_s']:7.2f} comparisons/s  ({row['median_step_s']:.2f} s/step,"
            f" {row['comparisons_per_step']} comparisons/step)  peak RSS {row['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    best = {m: max(r["comparisons_per_s"] for r in runs) for m, runs in rows.items()}
    ratio = best["group"] / best["pairwise"]
    print(f"group batching / pair-wise encoding: {ratio:.1f}x comparisons per second")
    report = {
        "benchmark": "throughput",
        "quick": args.quick,
        "machine": {"platform": platform.platform(), "cpus": 2},
        "runs": rows,
        "best_comparisons_per_s": best,
        "ratio": ratio,
    }
    write_results("throughput", args.quick, report)


if __name__ == "__main__":
    main()
