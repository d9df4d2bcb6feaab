"""Where pair-only training's memory goes (HH-RLHF, k = 1, 256 tokens, 32 sequences per step, fp32):
unirank against TRL's RewardTrainer on identical token sequences, and unirank again with glibc's
mmap threshold fixed at 1 MiB (`MALLOC_MMAP_THRESHOLD_=1048576`: large blocks go back to the system
when freed instead of staying in the heap), each in a fresh process (`benchmarks.train_speed`).

    python benchmarks/train_memory.py [--steps 10]

Per contender: the live tensors at the last step (weights, gradients, optimiser state: what the
process must hold), the resident memory after each optimiser step (median and largest), the peak
(VmHWM) and the median step time. Writes results/train_memory.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import run_module, write_results  # noqa: E402

CONTENDERS = {
    "TRL RewardTrainer": ("trl", {}),
    "unirank": ("unirank", {}),
    "unirank, MALLOC_MMAP_THRESHOLD_=1 MiB": ("unirank", {"MALLOC_MMAP_THRESHOLD_": "1048576"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    rows = {}
    for name, (tool, env) in CONTENDERS.items():
        out = run_module("benchmarks.train_speed", "--tool", tool, "--precision", "fp32", "--steps", str(args.steps),
                         "--warmup", "2", env=env)  # fmt: skip
        between = out["rss_after_steps_mb"]
        rows[name] = {
            "live_tensors_mb": round(out["live_tensors_mb"]),
            "rss_after_step_median_mb": round(statistics.median(between)),
            "rss_after_step_max_mb": max(between),
            "peak_rss_mb": round(out["peak_rss_mb"]),
            "median_step_s": round(out["median_step_s"], 3),
            "steps_timed": out["steps_timed"],
        }
        print(f"{name:40s} " + ", ".join(f"{k} {v}" for k, v in rows[name].items()))
    machine = f"{platform.platform()}, {platform.machine()}, 2 CPU cores"
    write_results("train_memory", False, {"machine": machine, "precision": "fp32", "contenders": rows})


if __name__ == "__main__":
    main()
