"""What running the last layer only at the read tokens saves (`unirank.model.read_out`), in one process:
the same MiniLM scorer on the same batch (32 (query, passage) pairs that fill 128 or 256 tokens) with
`Scorer.read_out` on and off, interleaved in rounds, for scoring (forward, eval mode, no grad) and
training (forward + backward, train mode, dropout off), fp32. Reports the median time per batch
of each and the median over rounds of the off/on ratio with a 95 % bootstrap interval over rounds.

    python benchmarks/read_out_speed.py [--rounds 8] [--lengths 128 256]
Writes benchmarks/results/read_out_speed.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine, write_results  # noqa: E402
from benchmarks.throughput import median_interval  # noqa: E402

BATCH = 32


def batch_of(tokenizer, length: int) -> dict:
    """BATCH (query, passage) pairs that fill `length` tokens, as a padded batch."""
    query, passage = "what does aspirin do to the heart", "aspirin thins the blood and lowers the risk " * 60
    return dict(tokenizer([query] * BATCH, [passage] * BATCH, truncation=True, max_length=length,
                          padding=True, return_tensors="pt"))  # fmt: skip


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 256])
    args = parser.parse_args()
    import torch

    from unirank.model import Scorer, load_backbone

    torch.manual_seed(0)
    model, tokenizer = load_backbone("minilm")
    scorer = Scorer(model, tokenizer)
    scorer.set_dropout(0.0)

    def score(batch):
        scorer.eval()
        with torch.no_grad():
            scorer(**batch)

    def train(batch):
        scorer.train()
        scorer.zero_grad()
        scorer(**batch).pow(2).mean().backward()

    report = {"benchmark": "read_out_speed", "machine": machine(), "batch": BATCH, "precision": "fp32", "rows": {}}
    for length in args.lengths:
        batch = batch_of(tokenizer, length)
        for name, step in (("scoring", score), ("training", train)):
            step(batch)  # warm-up
            times = {True: [], False: []}
            for round_number in range(args.rounds):
                for read_out in (True, False) if round_number % 2 == 0 else (False, True):
                    scorer.read_out = read_out
                    times[read_out].append(timed(lambda: step(batch)))
            ratios = [full / read for read, full in zip(times[True], times[False])]
            row = {
                "tokens": length,
                "seconds_read_out": times[True],
                "seconds_full": times[False],
                "median_s": {"read_out": statistics.median(times[True]), "full": statistics.median(times[False])},
                "speedup": statistics.median(ratios),
                "speedup_interval": median_interval(ratios),
            }
            report["rows"][f"{name} {length}"] = row
            (low, high), medians = row["speedup_interval"], row["median_s"]
            print(f"{name:8s} {length} tokens: full {medians['full']:.3f} s, read-out {medians['read_out']:.3f} s "
                  f"per batch: {row['speedup']:.2f}x [{low:.2f}, {high:.2f}]")  # fmt: skip
    write_results("read_out_speed", False, report)


if __name__ == "__main__":
    main()
