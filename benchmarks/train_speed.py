"""Training speed on pair-only preferences (HH-RLHF harmless: one pair per prompt, k = 1), one tool
per fresh process: unirank's own training loop (Trainer, data module, module) or TRL's
RewardTrainer, on identical token sequences (unirank's chat adapter, 256 tokens), 16 pairs (32
sequences) per optimiser step, bf16 autocast (or fp32), AdamW, lr 5e-5, dropout off (TRL's default;
`--dropout 0.1` gives unirank BERT's own).

    python -m benchmarks.train_speed --tool unirank|trl [--precision bf16|fp32] [--steps 12] [--warmup 3]

The step time is the interval between successive optimiser steps' ends (data loading, tokenising,
forward, backward and optimiser all inside), median over the steps after the warm-up; unirank also
reports where its step time goes (data: fetch + tokenise + collate; forward + loss; backward;
optimiser + the rest). TRL is handed the token ids pre-made, so its data time is collation only;
unirank tokenises in its loop, as it does in training. Also recorded: the resident memory after
each step and, at the last, the storage of every live tensor. Prints one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from benchmarks.common import ROOT, live_tensor_mb, peak_rss_mb, rss_mb

HH = ROOT.parent / "shared" / "data" / "hh-rlhf-harmless" / "test.jsonl.gz"
PAIRS, MAX_LENGTH, LR = 16, 256, 5e-5


def unirank_steps(data: str, steps: int, dropout: float | None, bf16: bool) -> tuple[list, list, list]:
    import lightning as L

    from unirank.adapters import ChatAdapter
    from unirank.data.datamodule import UnirankDataModule
    from unirank.domains.chat.source import Preferences
    from unirank.module import Calibration, Schedule, UnirankModule

    class Phases(L.Callback):
        def __init__(self):
            self.ends, self.rows, self.marks, self.resident = [], [], {}, []

        def on_train_batch_start(self, trainer, module, batch, index):
            self.marks = {"start": time.perf_counter()}

        def on_before_backward(self, trainer, module, loss):
            self.marks["backward"] = time.perf_counter()

        def on_after_backward(self, trainer, module):
            self.marks["optimizer"] = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, index):
            now, m = time.perf_counter(), self.marks
            previous = self.ends[-1] if self.ends else None
            self.rows.append({
                "data": m["start"] - previous if previous is not None else None,
                "forward + loss": m["backward"] - m["start"],
                "backward": m["optimizer"] - m["backward"],
                "optimizer + rest": now - m["optimizer"],
            })  # fmt: skip
            self.ends.append(now)
            self.resident.append(rss_mb())
            if len(self.ends) > steps:
                self.live = live_tensor_mb()
                trainer.should_stop = True

    module = UnirankModule(
        model="minilm",
        adapter=ChatAdapter(max_length=MAX_LENGTH),
        schedule=Schedule(pairwise_epochs=1, pointwise_epochs=0),
        calibration=Calibration(final="none"),
        lr=LR,
        dropout=dropout,
    )
    data = UnirankDataModule(Preferences(data, "hh-rlhf", 0.1, 0.3), batch_groups=PAIRS)
    phases = Phases()
    trainer = L.Trainer(
        accelerator="cpu", precision="bf16-mixed" if bf16 else "32-true", max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        num_sanity_val_steps=0, callbacks=[phases],
    )  # fmt: skip
    trainer.fit(module, data)
    return phases.ends, phases.rows, (phases.resident, phases.live)


def trl_steps(data: str, steps: int, bf16: bool) -> tuple[list, list]:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from benchmarks.trl_train import chosen_rejected_ids
    from unirank.domains.chat.source import Preferences
    from unirank.model.backbone import resolve_model_path

    tables = Preferences(data, "hh-rlhf", 0.1, 0.3).load().split("train")
    path = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = chosen_rejected_ids(tables, tokenizer, MAX_LENGTH)  # HH-RLHF has no ties: every pair

    class Ends(TrainerCallback):
        def __init__(self):
            self.ends, self.resident = [], []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())
            self.resident.append(rss_mb())
            if len(self.ends) > steps:
                self.live = live_tensor_mb()
                control.should_training_stop = True

    ends = Ends()
    config = RewardConfig(
        output_dir=str(ROOT / "runs" / "train-speed-trl"), num_train_epochs=1, per_device_train_batch_size=PAIRS,
        learning_rate=LR, bf16=bf16, use_cpu=True, save_strategy="no", logging_steps=1000, seed=0, report_to=[],
        max_length=None,
    )  # fmt: skip
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    trainer = RewardTrainer(
        model=model, args=config, train_dataset=Dataset.from_dict(rows), processing_class=tokenizer, callbacks=[ends]
    )
    trainer.train()
    return ends.ends, (ends.resident, ends.live)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool", choices=["unirank", "trl"], required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--data", default=str(HH))
    parser.add_argument("--dropout", type=float, default=0.0, help="unirank's dropout (TRL's default: none)")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    args = parser.parse_args()
    phases = None
    if args.tool == "unirank":
        ends, rows, memory = unirank_steps(args.data, args.steps + args.warmup, args.dropout, args.precision == "bf16")
        kept = rows[args.warmup + 1 :]
        phases = {name: statistics.median(r[name] for r in kept) for name in kept[0]}
    else:
        ends, memory = trl_steps(args.data, args.steps + args.warmup, args.precision == "bf16")
    intervals = [b - a for a, b in zip(ends, ends[1:])][args.warmup :]
    step = statistics.median(intervals)
    result = {
        "tool": args.tool,
        "dropout": args.dropout if args.tool == "unirank" else 0.0,
        "precision": args.precision,
        "sequences_per_step": 2 * PAIRS,
        "steps_timed": len(intervals),
        "median_step_s": step,
        "sequences_per_s": 2 * PAIRS / step,
        "phases_s": phases,
        "peak_rss_mb": peak_rss_mb(),
        "rss_after_steps_mb": [round(r) for r in memory[0]],
        "live_tensors_mb": memory[1],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
