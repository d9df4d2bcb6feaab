"""Process reward model on PRMBench: the process recipe (lightning_configs/process.yaml) trained from
all-MiniLM-L6-v2 on 70 % of the problems, then on the held-out 20 %:
- `unirank evaluate --steps`: step ECE and Brier (against the constant predictor that knows the
  test split's own share of correct steps, a bar the model cannot see), first-error accuracy, each
  with a 95 % bootstrap interval over problems;
- `unirank prune`: each chain stopped at its first step with P(correct) < t, t chosen on the
  validation problems to keep ≥ 95 % of the correct solutions' steps; the share of wrong solutions
  stopped before their end and the tokens saved; and the same with `--conservative` (the 95 % lower
  bound of P(correct) from the head posterior against t).

    python benchmarks/process.py [--quick] [--data ../shared/data] [--device cpu|cuda] [--precision bf16|fp32]

--precision: training (bf16 autocast by default); scoring runs in fp32 on the CPU, as `unirank evaluate` does.
--quick: the first 60 solutions, 192 tokens, 1 + 1 epochs (a smoke check; results/process-quick.json).

Writes benchmarks/results/process.json, the report folder results/process-prmbench/,
results/process-prune.json and results/process-prune-conservative.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, ROOT, run_timed, unirank_command, write_results  # noqa: E402
from benchmarks.reranker import _device_name  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    steps = str((Path(args.data) / "prmbench" / "target_data.jsonl").resolve())
    work = ROOT / "runs" / ("bench-process-quick" if args.quick else "bench-process")
    model = work / "model"
    quick = []
    if args.quick:  # a slice of the real file, written beside the run (never into the repository)
        work.mkdir(parents=True, exist_ok=True)
        lines = Path(steps).read_text(encoding="utf-8").splitlines(keepends=True)[:60]
        (work / "target_data.jsonl").write_text("".join(lines), encoding="utf-8")
        steps = str(work / "target_data.jsonl")
        quick = ["--model.adapter.init_args.max_length", "192", "--model.schedule.pairwise_epochs", "1",
                 "--model.schedule.pointwise_epochs", "1"]  # fmt: skip
    fit = unirank_command(
        "fit", "--config", "lightning_configs/process.yaml", "--data.source.init_args.path", steps,
        "--trainer.accelerator", "gpu" if args.device == "cuda" else "cpu",
        "--trainer.precision", "bf16-mixed" if args.precision == "bf16" else "32-true",
        "--trainer.logger", "false", "--trainer.default_root_dir", str(work), "--export.dirpath", str(model), *quick,
    )  # fmt: skip
    train_s = run_timed(fit)
    suffix = "-quick" if args.quick else ""
    report_dir, prune_out = RESULTS / f"process-prmbench{suffix}", RESULTS / f"process-prune{suffix}.json"
    split = ["--steps", steps, "--validation_fraction", "0.1", "--test_fraction", "0.2", "--precision", "fp32"]
    evaluate_s = run_timed(unirank_command("evaluate", "--model", str(model), *split, "--out", str(report_dir)))
    run_timed(unirank_command("prune", "--model", str(model), *split, "--out", str(prune_out)))
    cautious_out = RESULTS / f"process-prune-conservative{suffix}.json"
    run_timed(unirank_command("prune", "--model", str(model), *split, "--conservative", "--out", str(cautious_out)))
    metrics = json.loads((report_dir / "metrics.json").read_text())["systems"]["model"]
    prune, cautious = (json.loads(path.read_text()) for path in (prune_out, cautious_out))
    prune.pop("solutions_stopped")
    cautious.pop("solutions_stopped")
    correct_share = 1 - metrics["wrong_steps"] / metrics["steps"]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {_device_name(args.device)}",
        "precision": args.precision,
        "train_s": round(train_s, 1),
        "evaluate_s": round(evaluate_s, 1),
        "test": {
            key: metrics[key]
            for key in (
                "steps",
                "wrong_steps",
                "step_ece",
                "step_brier",
                "first_error_accuracy",
                "first_error_location_accuracy",
                "solutions_with_error",
                "solution_pair_accuracy",
                "intervals",
                "n_problems",
            )
            if key in metrics
        },  # fmt: skip
        "base_rate_brier": correct_share * (1 - correct_share),
        "prune": prune,
        "prune_conservative": cautious,
    }
    write_results("process", args.quick, result)
    t = result["test"]
    print(
        f"PRMBench test: step Brier {t['step_brier']:.4f} (base rate {result['base_rate_brier']:.4f}), step ECE "
        f"{t['step_ece']:.4f}, first-error accuracy {t['first_error_accuracy']:.3f} (least probable step: "
        f"{t['first_error_location_accuracy']:.3f}); prune at "
        f"{prune['threshold']:.2f}: {prune['correct_steps_kept']:.1%} of correct solutions' steps kept, "
        f"{prune['wrong_stopped_before_end']:.1%} of wrong solutions stopped, "
        f"{prune['tokens_saved_share']:.1%} tokens saved"
    )


if __name__ == "__main__":
    main()
