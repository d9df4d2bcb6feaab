"""SciFact reranker: the first stage, sentence-transformers' CrossEncoderTrainer, unirank BT only and
the full unirank schedule, trained on the same mined candidates and scored on the same test lists.

Every contender starts from all-MiniLM-L6-v2 (`minilm`), reads (query, title + abstract) truncated to
128 tokens (longest-first, as CrossEncoder truncates), trains for the same number of epochs over the
same candidates (the train split's mined top 100: every judged positive + 7 hard negatives per
query, 10 % of the queries held out for validation) with bf16 autocast, lr 5e-5, 32 sequences per
step, and reranks the first stage's top 100 for the 300 test queries, scored in bf16:
- first stage: the bi-encoder's cosine (FAISS), for reference;
- CrossEncoderTrainer + BinaryCrossEntropyLoss on (query, document, relevant) rows;
- unirank BT only: `epochs` Bradley-Terry epochs on the cycle comparisons;
- unirank full: `epochs - 1` Bradley-Terry epochs, the Thurstone fit, 1 pointwise epoch.
Reported: NDCG@10, MRR@10, recall@100, ECE and Brier of σ(score) against relevance over the reranked
lists, precision of σ > 0.5 and its spread across queries, and training wall time, each training in
a fresh process.

    python benchmarks/reranker.py [--quick] [--scifact ../shared/data/scifact] [--epochs 3]
--quick trains 1 epoch on the demo BEIR set (data/demo-beir, top 20) as a smoke check.
Writes benchmarks/results/reranker.json and benchmarks/results/reranker-scifact/ (metrics.json,
reliability.png, summary.txt); --quick writes the *-quick variants; --label-weight W (other than
the recipe's 30) writes reranker-label-weight-W.json and reranker-label-weight-W-scifact/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (  # noqa: E402
    RESULTS,
    ROOT,
    fit_command,
    run_child,
    run_timed,
    train_once,
    unirank_command,
    write_results,
)

MAX_LENGTH, LR, BATCH_SEQUENCES, NEGATIVES = 128, 5e-5, 32, 7
LABEL_WEIGHT = 30.0  # a qrels judgment counts as 30 votes against the anchor (see reranker.yaml)

ST_CHILD = """
import json, sys, time
import polars as pl
sys.path.insert(0, {root!r})
from benchmarks.common import peak_rss_mb
from datasets import Dataset
from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
from unirank.data.tables import read_tables
from unirank.models import resolve_model_path

tables = read_tables({mined!r}).split("train")
queries = dict(tables.groups.select("group_id", "context").iter_rows())
rows = tables.items.select("group_id", "text", "label").iter_rows()
pairs = [(queries[g], text, float(label > 0)) for g, text, label in rows]
data = Dataset.from_dict({{"query": [q for q, _, _ in pairs], "document": [d for _, d, _ in pairs],
                          "label": [y for _, _, y in pairs]}})
start = time.perf_counter()
model = CrossEncoder(resolve_model_path("minilm"), num_labels=1, max_length={max_length})
args = CrossEncoderTrainingArguments(
    output_dir={out!r}, num_train_epochs={epochs}, per_device_train_batch_size={batch}, learning_rate={lr},
    warmup_ratio=0.1, bf16=True, use_cpu=True, save_strategy="no", logging_steps=50, seed=0, report_to=[],
    dataloader_drop_last=False)
CrossEncoderTrainer(model=model, args=args, train_dataset=data, loss=BinaryCrossEntropyLoss(model)).train()
seconds = time.perf_counter() - start
model.save_pretrained({out!r} + "/model")
print(json.dumps({{"train_s": seconds, "peak_rss_mb": peak_rss_mb(), "rows": len(pairs)}}))
"""

EVAL_CHILD = """
import json, sys, time
sys.path.insert(0, {root!r})
from unirank.adapters import RetrievalAdapter
from unirank.data.readers import read_beir
from unirank.evaluation.report import evaluate_retrieval, write_report
from unirank.mining.pipeline import MiningConfig, mine_beir
from unirank.module import UnirankModule
from unirank.scoring import Predictor, load_scorer

config = MiningConfig(k={k}, keep_ranking=True, cache_dir={cache!r})
tables, _ = mine_beir({beir!r}, "test", config)
st = UnirankModule(model={st_model!r}, adapter=RetrievalAdapter(max_length={max_length}))
predictors = {{
    "CrossEncoderTrainer (BCE)": Predictor(st, "pairwise", bf16=True),
    "unirank BT only": load_scorer({bt_model!r}, bf16=True),
    "unirank full": load_scorer({full_model!r}, bf16=True),
}}
start = time.perf_counter()
report = evaluate_retrieval(predictors, tables, read_beir({beir!r}, "test").qrels)
report["scoring_s"] = time.perf_counter() - start
print(write_report(report, {out!r}), file=sys.stderr)
print(json.dumps(json.loads(open({out!r} + "/metrics.json").read())))
"""


def unirank_fit(mined: Path, out: Path, pairwise: int, pointwise: int, label_weight: float | None = None) -> list[str]:
    """The `unirank fit` command of one contender: the reranker recipe on the mined tables
    (label_weight: the Thurstone fit's weight of a qrels label, for a schedule with a pointwise stage)."""
    groups_per_batch = BATCH_SEQUENCES // (NEGATIVES + 1)  # one query's candidates form a group
    data = ["--data.source", "unirank.data.sources.TablesDir", "--data.source.path", str(mined)]
    data += ["--data.batch_groups", str(groups_per_batch)]
    extra = ["--model.calibration.label_weight", str(label_weight)] if label_weight is not None else []
    return fit_command("lightning_configs/reranker.yaml", data, MAX_LENGTH, LR, (pairwise, pointwise), out, extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--label-weight", type=float, default=LABEL_WEIGHT, help="calibration.label_weight")
    parser.add_argument("--reuse", action="store_true", help="keep contenders already trained with the same recipe")
    args = parser.parse_args()
    beir = str(ROOT / "data" / "demo-beir") if args.quick else str(Path(args.scifact).resolve())
    epochs, k = (2, 20) if args.quick else (args.epochs, 100)
    work = ROOT / "runs" / ("bench-reranker-quick" if args.quick else "bench-reranker")
    work.mkdir(parents=True, exist_ok=True)
    cache = str(ROOT / ".unirank-cache")
    mined = work / "mined"
    if not (mined / "mining.json").exists():
        run_timed(
            unirank_command(
                "mine",
                "--beir",
                beir,
                "--split",
                "train",
                "--k",
                str(k),
                "--negatives",
                str(NEGATIVES),
                "--validation-fraction",
                "0.1",
                "--cache-dir",
                cache,
                "--out",
                str(mined),
            )
        )
    # another label weight is an ablation: its own full model and result files
    variant = "" if args.label_weight == LABEL_WEIGHT else f"-label-weight-{args.label_weight:g}"
    stem, full = f"reranker{variant}", work / f"full{variant}"
    st_recipe = ST_CHILD.format(
        root=str(ROOT),
        mined=str(mined),
        out=str(work / "st"),
        epochs=epochs,
        batch=BATCH_SEQUENCES,
        lr=LR,
        max_length=MAX_LENGTH,
    )
    train_s = {
        "CrossEncoderTrainer (BCE)": train_once(work / "st", st_recipe, args.reuse),
        "unirank BT only": train_once(work / "bt", unirank_fit(mined, work / "bt", epochs, 0), args.reuse),
        "unirank full": train_once(full, unirank_fit(mined, full, epochs - 1, 1, args.label_weight), args.reuse),
    }
    out_dir = RESULTS / (f"{stem}-scifact-quick" if args.quick else f"{stem}-scifact")
    metrics = run_child(
        EVAL_CHILD.format(
            root=str(ROOT),
            k=k,
            cache=cache,
            beir=beir,
            max_length=MAX_LENGTH,
            out=str(out_dir),
            st_model=str(work / "st" / "model"),
            bt_model=str(work / "bt" / "model"),
            full_model=str(full / "model"),
        )
    )
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
        "data": beir,
        "setup": {
            "backbone": "all-MiniLM-L6-v2",
            "max_length": MAX_LENGTH,
            "epochs": epochs,
            "lr": LR,
            "sequences_per_step": BATCH_SEQUENCES,
            "negatives_per_query": NEGATIVES,
            "first_stage_depth": k,
            "label_weight": args.label_weight,
            "precision": "bf16 autocast (training and scoring)",
        },
        "mining": json.loads((mined / "mining.json").read_text()),
        "train_s": train_s,
        "scoring_s": metrics.get("scoring_s"),
        "systems": {name: _headline(entry) for name, entry in metrics["systems"].items()},
        "report": str(out_dir.relative_to(ROOT)),
    }
    write_results(stem, args.quick, report)
    print((out_dir / "summary.txt").read_text())


def _headline(entry: dict) -> dict:
    """The table's figures from one system's full metrics entry."""
    row = {name: entry[name] for name in ("ndcg@10", "mrr@10", "recall@100") if name in entry}
    if "calibration" in entry:
        row["ece"], row["brier"] = entry["calibration"]["ece"], entry["calibration"]["brier"]
        at_half = next(t for t in entry["thresholds"] if t["threshold"] == 0.5)
        row["precision@σ>0.5"] = at_half["precision"]
        row["query_precision_std@σ>0.5"] = at_half["group_precision_std"]
        row["predicted_positive@σ>0.5"] = at_half["predicted_positive"]
    return row


if __name__ == "__main__":
    main()
