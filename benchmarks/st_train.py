"""Train a sentence-transformers CrossEncoder with its own documented recipes on unirank's mined
train candidates (the baseline of benchmarks/reranker.py), then save it.

    python -m benchmarks.st_train --mined DIR --loss bce|lambda --out DIR [--epochs 3] [--device cpu|cuda]

bce: BinaryCrossEntropyLoss(pos_weight = negatives per positive) on (query, document, label) rows;
lambda: LambdaLoss (NDCG-driven listwise loss) on (query, [documents], [labels]) lists, one per query.
Prints {"train_s", "peak_rss_mb", "rows"} as JSON on its last line.
"""

from __future__ import annotations

import argparse
import json
import time

import polars as pl
import torch

from benchmarks.common import peak_rss_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mined", required=True)
    parser.add_argument("--loss", choices=["bce", "lambda"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--sequences", type=int, default=32, help="sequences per step")
    parser.add_argument("--negatives", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--seed", type=int, default=0, help="the trainer's seed (head initialisation, batch order)")
    args = parser.parse_args()

    from datasets import Dataset
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss, LambdaLoss

    from unirank.data.tables import read_tables
    from unirank.model.backbone import resolve_model_path

    tables = read_tables(args.mined).split("train")
    queries = dict(tables.groups.select("group_id", "context").iter_rows())
    items = tables.items.select("group_id", "text", (pl.col("label") > 0).cast(pl.Float64).alias("label"))
    start = time.perf_counter()
    model = CrossEncoder(resolve_model_path("minilm"), num_labels=1, max_length=args.max_length, device=args.device)
    if args.loss == "bce":
        data = Dataset.from_dict(
            {"query": [queries[g] for g in items["group_id"]], "document": items["text"].to_list(),
             "label": items["label"].to_list()}
        )  # fmt: skip
        loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(args.negatives)))
        batch, rows = args.sequences, items.height
    else:
        lists = items.group_by("group_id", maintain_order=True).agg("text", "label")
        data = Dataset.from_dict(
            {"query": [queries[g] for g in lists["group_id"]], "docs": lists["text"].to_list(),
             "labels": lists["label"].to_list()}
        )  # fmt: skip
        loss = LambdaLoss(model)
        batch, rows = max(1, args.sequences // (args.negatives + 1)), lists.height
    training = CrossEncoderTrainingArguments(
        output_dir=args.out, num_train_epochs=args.epochs, per_device_train_batch_size=batch, learning_rate=args.lr,
        warmup_ratio=0.1, bf16=args.precision == "bf16", use_cpu=args.device == "cpu", save_strategy="no",
        logging_steps=50, seed=args.seed, report_to=[], dataloader_drop_last=False,
    )  # fmt: skip
    CrossEncoderTrainer(model=model, args=training, train_dataset=data, loss=loss).train()
    seconds = time.perf_counter() - start
    model.save_pretrained(args.out + "/model")
    print(json.dumps({"train_s": seconds, "peak_rss_mb": peak_rss_mb(), "rows": rows}))


if __name__ == "__main__":
    main()
