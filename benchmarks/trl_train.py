"""Train TRL's RewardTrainer on the same token sequences unirank's chat adapter makes (the baseline
of benchmarks/reward.py), then save it.

    python -m benchmarks.trl_train --preferences FILE --format F --out DIR [--center-rewards 0.01]
        [--epochs 2] [--max-length 256] [--device cpu|cuda]

TRL learns from the majority label of each comparison (ties have no TRL label and are left out); it
is handed the token ids pre-made, so truncation matches unirank's (TRL would otherwise drop every
pair over max_length). --center-rewards sets RewardConfig.center_rewards_coefficient (TRL documents
0.01), which pulls the mean reward to 0. Prints {"train_s", "peak_rss_mb", "pairs"} as JSON last.
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks.common import peak_rss_mb


def chosen_rejected_ids(tables, tokenizer, max_length: int) -> dict[str, list]:
    """TRL's preference rows from unirank's tables: the token ids unirank's chat adapter makes for
    each decided comparison's preferred and other response (ties, which TRL cannot express, left out)."""
    from unirank.adapters import ChatAdapter

    encoded = ChatAdapter(max_length=max_length).encode(
        tokenizer, tables.item_contexts(), tables.items["text"].to_list()
    )
    comparisons = tables.indexed_comparisons()
    rows: dict[str, list] = {"chosen_ids": [], "rejected_ids": []}
    for a, b, p in comparisons.filter(comparisons["p"] != 0.5).select("_a", "_b", "p").iter_rows():
        chosen, rejected = (a, b) if p > 0.5 else (b, a)
        rows["chosen_ids"].append(encoded[chosen].input_ids)
        rows["rejected_ids"].append(encoded[rejected].input_ids)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preferences", required=True)
    parser.add_argument("--format", default="trl")
    parser.add_argument("--out", required=True)
    parser.add_argument("--center-rewards", type=float, default=None)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--pairs", type=int, default=16, help="pairs per step (2 sequences each)")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    args = parser.parse_args()

    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from unirank.domains.chat.source import Preferences
    from unirank.model.backbone import resolve_model_path

    source = Preferences(args.preferences, args.format, args.validation_fraction, args.test_fraction)
    tables = source.load().split("train")
    path = resolve_model_path("minilm")
    tokenizer = AutoTokenizer.from_pretrained(path)
    rows = chosen_rejected_ids(tables, tokenizer, args.max_length)
    start = time.perf_counter()
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    config = RewardConfig(
        output_dir=args.out, num_train_epochs=args.epochs, per_device_train_batch_size=args.pairs,
        learning_rate=args.lr, warmup_steps=0.1, bf16=args.precision == "bf16", use_cpu=args.device == "cpu",
        save_strategy="no", logging_steps=20, seed=args.seed, report_to=[], max_length=None,
        center_rewards_coefficient=args.center_rewards,
    )  # fmt: skip
    trainer = RewardTrainer(model=model, args=config, train_dataset=Dataset.from_dict(rows), processing_class=tokenizer)
    trainer.train()
    seconds = time.perf_counter() - start
    trainer.save_model(args.out + "/model")
    print(json.dumps({"train_s": seconds, "peak_rss_mb": peak_rss_mb(), "pairs": len(rows["chosen_ids"])}))


if __name__ == "__main__":
    main()
