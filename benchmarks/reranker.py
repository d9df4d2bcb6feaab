"""SciFact reranker: the first stage, sentence-transformers' CrossEncoderTrainer with its documented
recipes, unirank BT only, the full unirank schedule, and an ablation of each ingredient of the
schedule, all trained on the same mined candidates and scored on the same test lists.

Every contender starts from all-MiniLM-L6-v2 (`minilm`), reads (query, title + abstract) cut to 128
tokens, trains 3 epochs with lr 5e-5, 32 sequences per step and bf16 autocast, and reranks the
first stage's top 100 for the 300 test queries (30,000 pairs), scored in bf16. Mined train data
(809 train queries, 10 % held out by a stable hash for validation; validation queries always carry
their whole top 100, the scored depth):
- hard: every judged positive + 7 filtered hard negatives per train query (the usual recipe);
- top-k: every judged positive + the whole top 100 (unjudged candidates weigh 0.1 against the
  anchor and in ties with each other), 8 candidates sampled per query and step (same sequences per
  step and per epoch as hard).
Contenders (unirank: `lightning_configs/reranker.yaml` with the overrides listed in CONTENDERS):
- CrossEncoderTrainer + BinaryCrossEntropyLoss(pos_weight = 7) on hard; + LambdaLoss on hard lists;
- unirank BT only: 3 Bradley-Terry epochs on hard, logits as trained;
- unirank full (before): the schedule as it was: hard, stage-1 priors for sparse groups only, no
  ranking term in stage 2, no final calibration;
- unirank full: top-k, 2 BT epochs, the Thurstone fit with stage-1 priors for every group, 1
  pointwise epoch with λ = 1 Bradley-Terry term, the final calibration σ(a·r + b) fitted on the
  validation lists and folded into the head; and each ingredient taken away in turn;
(The fused prior and the teacher KL, screened at depth 30 in 0.1 and within noise, left the
package in 0.2; their rows stay in results/reranker-depth30.json as measured.)
Reported: NDCG@10, MRR@10, recall@100 with 95 % bootstrap intervals over queries; ECE (with its
interval) and Brier of σ(score) against relevance over the reranked lists; precision of σ > t and
its spread across queries; the fused ranking r + γ·first-stage score (γ fitted on validation) for
models that record it; training wall time, each contender in a fresh process.

    python benchmarks/reranker.py [--quick] [--scifact ../shared/data/scifact] [--mined DIR]
                                  [--parallel N] [--device cpu|cuda] [--only NAME ...]
                                  [--depth K] [--precision bf16|fp32] [--seed N] [--max-length L]
--quick: the demo BEIR set (top 20, 2 epochs) as a smoke check. --depth: the first stage's top k
(train lists and reranked test lists; 100 by default): a screen at reduced cost, written to
reranker-depthK.json and its own folders. --precision: training and scoring (fp32 on a CPU
without native bf16, where bf16 is emulated and about 3x slower); the tables are mined in bf16
whatever it says, as every recorded result's tables were (on such a CPU encoding SciFact's corpus
takes ~32 min, once: the mined folder is kept). Emulated bf16 rounds differently from native bf16,
so tables encoded on such a CPU can differ slightly from ones encoded elsewhere (by how much for the
depth-30 screen: `mining_note` in results/reranker-depth30-len256.json). --mined: a folder with the mined
`hard/`, `top-k/` and `test/` tables (they are mined into runs/ otherwise). --parallel: contenders
trained at once (a GPU machine). --only: run these contenders; the others keep the rows of their
report folders from an earlier run (listed as "reused"). Writes benchmarks/results/reranker.json
(reranker-quick.json) and one report folder per contender under benchmarks/results/reranker-scifact/.
--seed N (N > 0): every contender trained with seed N (unirank: seed_everything, model.seed,
data.seed; sentence-transformers: the trainer's seed) into reranker[-depthK]-seed-N.json and its
own folders, the same mined tables: one seed's difference is not a result on SciFact (two seeds of
the same recipe read 0.693 and 0.710 NDCG@10 at depth 30), so compare seed means.
--max-length L (not 128): every contender trains and scores on inputs of L tokens, into
reranker[-depthK]-lenL[-seed-N].json and its own folders (SciFact's abstracts run to a median 317
tokens, so 128 reads about the first third of one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import RESULTS, ROOT, fit_command, run_timed, unirank_command, write_results  # noqa: E402
from benchmarks.jobs import (  # noqa: E402
    Job,
    final_calibration,
    finished_reports,
    paired_versus,
    reused_reports,
    run_jobs,
    slug,
)

MAX_LENGTH, LR, BATCH_SEQUENCES, NEGATIVES, UNJUDGED_WEIGHT = 128, 5e-5, 32, 7, 0.1

FULL = {"data": "top-k", "epochs": (-1, 1), "overrides": {}}
CONTENDERS: dict[str, dict] = {
    "CrossEncoderTrainer + BCE (pos_weight 7)": {"st": "bce"},
    "CrossEncoderTrainer + LambdaLoss": {"st": "lambda"},
    "unirank BT only": {
        "data": "hard",
        "epochs": (0, 0),
        "overrides": {"model.calibration.final": "none"},
    },
    "unirank full (before)": {
        "data": "hard",
        "epochs": (-1, 1),
        "overrides": {
            "model.calibration.prior_groups": "sparse",
            "model.ranking_weight": "0",
            "model.calibration.final": "none",
        },
    },
    "unirank full": FULL,
    "full − top-k lists (hard negatives)": {**FULL, "data": "hard"},
    "full − stage-1 priors (sparse groups only)": {**FULL, "overrides": {"model.calibration.prior_groups": "sparse"}},
    "full − ranking term in stage 2": {**FULL, "overrides": {"model.ranking_weight": "0"}},
    "full − final calibration": {**FULL, "overrides": {"model.calibration.final": "none"}},
    "unirank BT only + final calibration": {"data": "hard", "epochs": (0, 0), "overrides": {}},
}
"""epochs: (pairwise, pointwise) relative to --epochs: (0, 0) is all pairwise, (-1, 1) one pointwise."""


def mine(beir: str, mined: Path, k: int, quick: bool) -> None:
    """The hard, top-k and test tables (skipped where a folder already holds them)."""
    cache = str(ROOT / ".unirank-cache")
    common = ["--beir", beir, "--mining.k", str(k), "--mining.cache_dir", cache, "--mining.precision", "bf16"]
    train = [
        "--split", "train", "--mining.negatives", str(NEGATIVES),
        "--mining.validation_fraction", "0.25" if quick else "0.1",
    ]  # fmt: skip
    variants = {
        "hard": train,
        "top-k": [*train, "--mining.candidates", "top_k", "--mining.unjudged_weight", str(UNJUDGED_WEIGHT)],
        "test": ["--split", "test", "--mining.keep_ranking", "true"],
    }
    for name, args in variants.items():
        if not (mined / name / "mining.json").exists():
            run_timed(unirank_command("mine", *common, *args, "--out", str(mined / name)))


def contender_job(
    name: str,
    spec: dict,
    mined: Path,
    work: Path,
    reports: Path,
    epochs: int,
    device: str,
    precision: str,
    seed: int,
    max_length: int,
) -> Job:
    folder = work / slug(name)
    score = [sys.executable, "-m", "benchmarks.score_child", "--name", name, "--retrieval", str(mined / "test")]
    score += ["--max-length", str(max_length), "--out", str(reports / slug(name)), "--device", device]
    score += ["--precision", precision]
    if "st" in spec:
        train = [sys.executable, "-m", "benchmarks.st_train", "--mined", str(mined / "hard"), "--loss", spec["st"]]
        train += ["--out", str(folder), "--epochs", str(epochs), "--device", device, "--negatives", str(NEGATIVES)]
        train += ["--precision", precision, "--seed", str(seed), "--max-length", str(max_length)]
        return Job(name, [train, [*score, "--model", str(folder / "model"), "--kind", "plain"]], folder / "log.txt")
    pairwise, pointwise = epochs + spec["epochs"][0], spec["epochs"][1]
    items_per_group = NEGATIVES + 1  # one query's candidates per group; top-k samples as many per step
    data = ["--data.source", "unirank.data.sources.TablesDir", "--data.source.path", str(mined / spec["data"])]
    data += ["--data.batch_groups", str(BATCH_SEQUENCES // items_per_group)]
    data += ["--data.max_items_per_group", str(items_per_group if spec["data"] == "top-k" else 16)]
    extra = [f"--{key}={value}" for key, value in spec["overrides"].items()]
    extra += [f"--seed_everything={seed}", f"--model.seed={seed}", f"--data.seed={seed}"] if seed else []
    extra += ["--trainer.accelerator", "gpu" if device == "cuda" else "cpu"]
    extra += ["--trainer.precision", "bf16-mixed" if precision == "bf16" else "32-true"]
    fit = fit_command("lightning_configs/reranker.yaml", data, max_length, LR, (pairwise, pointwise), folder, extra)
    return Job(name, [fit, [*score, "--model", str(folder / "model")]], folder / "log.txt")


def headline(entry: dict) -> dict:
    """The table's figures from one system's metrics entry."""
    row = {name: entry[name] for name in ("ndcg@10", "mrr@10", "recall@100") if name in entry}
    row["n_queries"] = entry.get("n_queries")
    row["intervals"] = entry.get("intervals", {})
    if "calibration" in entry:
        row["ece"], row["brier"] = entry["calibration"]["ece"], entry["calibration"]["brier"]
        row["n_candidates"] = entry["calibration"]["n"]
        kept = ("precision", "precision_interval", "recall", "predicted_positive", "group_precision_std")
        row["thresholds"] = {str(t["threshold"]): {k: t.get(k) for k in kept} for t in entry["thresholds"]}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scifact", default=str(ROOT.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--mined", help="folder with mined hard/, top-k/ and test/ tables")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--only", nargs="*", help="contender names (default: all)")
    parser.add_argument("--depth", type=int, default=100, help="the first stage's top k (not with --quick)")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp32"], help="training and scoring")
    parser.add_argument("--seed", type=int, default=0, help="every contender's seed (results: ...-seed-N.json)")
    parser.add_argument("--max-length", type=int, default=MAX_LENGTH, help="tokens per (query, document) input")
    args = parser.parse_args()
    beir = str(ROOT / "data" / "demo-beir") if args.quick else str(Path(args.scifact).resolve())
    epochs, k = (2, 20) if args.quick else (args.epochs, args.depth)
    depth = "" if args.quick or k == 100 else f"-depth{k}"  # a screen at another depth: its own files
    tables = "-quick" if args.quick else depth
    length = "" if args.max_length == MAX_LENGTH else f"-len{args.max_length}"  # its own files, the same tables
    seed = f"-seed-{args.seed}" if args.seed else ""  # another seed: its own files, the same mined tables
    suffix = tables + length + seed
    work = ROOT / "runs" / f"bench-reranker{suffix}"
    mined = Path(args.mined) if args.mined else ROOT / "runs" / f"bench-reranker{tables}" / "mined"
    mine(beir, mined, k, args.quick)
    reports = RESULTS / f"reranker-scifact{suffix}"
    names = args.only or list(CONTENDERS)
    jobs = [
        contender_job(
            n, CONTENDERS[n], mined, work, reports, epochs, args.device, args.precision, args.seed, args.max_length
        )
        for n in names
    ]
    run_jobs(jobs, args.parallel)
    systems, per_group = {}, {}
    metrics, train_s, failed = finished_reports(jobs, reports)
    previous = RESULTS / f"reranker{suffix}.json"
    earlier = reused_reports(CONTENDERS, names, reports, json.loads(previous.read_text()) if previous.exists() else {})
    for contender, (entry, seconds, _) in earlier.items():
        metrics[contender], train_s[contender] = entry, seconds
    for contender, report in metrics.items():
        for name, entry in report["systems"].items():
            systems[name] = headline(entry)
            per_group[name] = entry.get("per_group", {})
        fit = earlier[contender][2] if contender in earlier else final_calibration(work / slug(contender) / "model")
        if fit:
            systems[contender]["final_calibration"] = fit
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {_device_name(args.device)}",
        "data": str(Path(beir).relative_to(ROOT.parent)) if Path(beir).is_relative_to(ROOT.parent) else beir,
        "setup": {
            "backbone": "all-MiniLM-L6-v2",
            "max_length": args.max_length,
            "epochs": epochs,
            "lr": LR,
            "sequences_per_step": BATCH_SEQUENCES,
            "negatives_per_query": NEGATIVES,
            "first_stage_depth": k,
            "unjudged_weight": UNJUDGED_WEIGHT,
            "precision": "bf16 autocast (training and scoring)" if args.precision == "bf16" else "fp32",
            "contenders": CONTENDERS,
        },
        "mining": {name: json.loads((mined / name / "mining.json").read_text()) for name in ("hard", "top-k", "test")},
        "train_s": train_s,
        "failed": failed,
        "systems": systems,
        # each system − unirank full, resampling the same test queries for both (paired)
        "versus_full": {metric: paired_versus(per_group, "unirank full", metric) for metric in ("ndcg@10", "mrr@10")},
        "reports": str(reports.relative_to(ROOT)),
        "reused": sorted(earlier),
    }
    report["seed"] = args.seed
    write_results(f"reranker{depth}{length}{seed}", args.quick, report)
    for name, row in systems.items():
        lo, hi = row["intervals"].get("ndcg@10", [float("nan")] * 2)
        print(f"{name:48s} NDCG@10 {row['ndcg@10']:.3f} [{lo:.3f}, {hi:.3f}]  ECE {row.get('ece', float('nan')):.3f}")


def _device_name(device: str) -> str:
    if device == "cpu":
        return "no GPU"
    import torch

    return torch.cuda.get_device_name(0)


if __name__ == "__main__":
    main()
