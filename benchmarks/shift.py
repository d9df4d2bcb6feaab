"""A SciFact reranker moved to CISI (library science, SMART format): ranking and calibration as
trained, and after `unirank recalibrate`-style refits on 25 / 50 / 100 / 200 CISI labels.

Model: `lightning_configs/reranker.yaml` trained on SciFact's train split (mined top 20; at reduced
cost with `--train-batches N` batches per epoch: a screen, say so when quoting it), reused from
runs/shift/model when it is there. CISI: the bi-encoder's top `--depth` for the 76 judged queries,
reranked; NDCG@10 of the first stage, the reranker and the fused ranking; ECE of σ(score) against
relevance. Recalibration curve: per repeat the queries are split in half at random; n labelled
candidates drawn at random from the first half fit σ(a·r + b) (`unirank.recalibration`), and the
ECE is read on every candidate of the other half (queries the fit never saw), beside the ECE as
trained on the same half; the median over repeats with its 2.5-97.5 % range. Decisions
(benchmarks/decisions.py): "relevant" at P ≥ 0.5 / 0.7, plain, conservative and shift-aware, on
CISI and in domain (the first --in-domain-queries SciFact test queries, same depth).

    python benchmarks/shift.py [--quick] [--train-batches 60] [--depth 50] [--repeats 20]
        [--in-domain-queries 100]
Writes benchmarks/results/shift.json (--quick: 2 batches per epoch, depth 10, 3 repeats, into
runs/shift-quick and shift-quick.json: a smoke check).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import ROOT, machine, median_range, run_timed, unirank_command, write_results  # noqa: E402
from benchmarks.decisions import item_decisions  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
LABELS = (25, 50, 100, 200)


def train(out: Path, batches: int) -> float:
    """The reranker recipe on SciFact train, `batches` per epoch (0: the whole recipe); seconds, 0
    when the model is reused."""
    if (out / "model" / "unirank.json").exists():
        return 0.0
    limit = ["--trainer.limit_train_batches", str(batches)] if batches else []
    return run_timed(unirank_command(
        "fit", "--config", "lightning_configs/reranker.yaml",
        "--data.source.init_args.beir_dir", str(SHARED / "scifact"), *limit, "--trainer.logger", "false",
        "--trainer.default_root_dir", str(out), "--export.dirpath", str(out / "model"),
    ))  # fmt: skip


def recalibration_curve(scores, relevant, groups, repeats: int, seed: int = 0) -> dict:
    """ECE on held-out queries after a refit on n labels of the other queries, per n (see module doc)."""
    from scipy import special

    from unirank.fitting.platt import fit_platt
    from unirank.metrics.calibration import calibration_error

    rng = np.random.default_rng(seed)
    queries = np.unique(groups)
    curve = {n: [] for n in LABELS}
    as_trained = []
    for _ in range(repeats):
        half = rng.permutation(queries)[: len(queries) // 2]
        pool, held = np.flatnonzero(np.isin(groups, half)), np.flatnonzero(~np.isin(groups, half))
        as_trained.append(calibration_error(special.expit(scores[held]), relevant[held]))
        for n in LABELS:
            chosen = rng.choice(pool, size=min(n, len(pool)), replace=False)
            label = np.full(len(scores), np.nan)
            label[chosen] = relevant[chosen]
            fit = fit_platt(scores, label=label)
            curve[n].append(calibration_error(special.expit(fit.a * scores[held] + fit.b), relevant[held]))

    return {"as_trained": median_range(as_trained), **{f"{n}_labels": median_range(v) for n, v in curve.items()}}


def in_domain(predictor, config, queries: int) -> dict:
    """The same model on SciFact test (its own domain): the first `queries` judged queries' top
    `config.k`: NDCG@10, ECE and the decisions, to show what the shift-aware rule leaves unchanged."""
    from unirank.data.tables import Tables
    from unirank.domains.retrieval.evaluation import evaluate_retrieval
    from unirank.domains.retrieval.readers import read_beir
    from unirank.evaluation.reading import read_items
    from unirank.mining.pipeline import mine_beir

    ranked, _ = mine_beir(SHARED / "scifact", "test", config)
    kept = ranked.groups["group_id"].head(queries).implode()
    keep = pl.col("group_id").is_in(kept)
    ranked = Tables(ranked.groups.filter(keep), ranked.items.filter(keep), ranked.comparisons.filter(keep))
    qrels = read_beir(SHARED / "scifact", "test").qrels
    row = evaluate_retrieval({"reranker": predictor}, ranked, qrels)["systems"]["reranker"]
    scores, features, states = read_items(predictor, ranked)
    items = ranked.items
    relevant = np.array([qrels.get(g, {}).get(i, 0) > 0 for g, i in items.select("group_id", "item_id").iter_rows()])
    return {
        "queries": ranked.groups.height, "candidates": items.height,
        "ndcg@10": row["ndcg@10"], "ndcg@10_interval": row.get("intervals", {}).get("ndcg@10"),
        "ece": row["calibration"]["ece"], "ece_interval": row.get("intervals", {}).get("ece"),
        "decisions": item_decisions(predictor, scores, features, states, relevant, items["group_id"].to_numpy()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke check at the smallest sizes")
    parser.add_argument("--train-batches", type=int, default=60, help="batches per epoch (0: the whole recipe)")
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--in-domain-queries", type=int, default=100, help="SciFact test queries read in domain")
    parser.add_argument("--out", default=str(ROOT / "runs" / "shift"))
    args = parser.parse_args()
    if args.quick:
        args.train_batches, args.depth, args.repeats, args.out = 2, 10, 3, str(ROOT / "runs" / "shift-quick")
        args.in_domain_queries = 10
    from dataclasses import replace

    from unirank.domains.retrieval.evaluation import evaluate_retrieval
    from unirank.domains.retrieval.readers import read_beir
    from unirank.evaluation.reading import read_items
    from unirank.mining.pipeline import MiningConfig, mine_beir
    from unirank.model import Model

    out = Path(args.out)
    seconds = train(out, args.train_batches)
    predictor = Model.from_pretrained(out / "model")
    start = time.perf_counter()
    config = replace(MiningConfig(k=args.depth, cache_dir=str(ROOT / ".unirank-cache")), keep_ranking=True)
    ranked, _ = mine_beir(SHARED / "cisi", "test", config)
    qrels = read_beir(SHARED / "cisi", "test").qrels
    report = evaluate_retrieval({"reranker": predictor}, ranked, qrels)
    scores, features, states = read_items(predictor, ranked)
    items = ranked.items
    relevant = np.array([qrels.get(g, {}).get(i, 0) > 0 for g, i in items.select("group_id", "item_id").iter_rows()])
    groups = items["group_id"].to_numpy()
    curve = recalibration_curve(np.asarray(scores, dtype=np.float64), relevant.astype(float), groups, args.repeats)
    decisions = item_decisions(predictor, scores, features, states, relevant, groups)
    inside = in_domain(predictor, config, args.in_domain_queries)
    systems = {
        name: {
            "ndcg@10": row["ndcg@10"], "ndcg@10_interval": row.get("intervals", {}).get("ndcg@10"),
            "ece": row.get("calibration", {}).get("ece"), "ece_interval": row.get("intervals", {}).get("ece"),
        }
        for name, row in report["systems"].items()
    }  # fmt: skip
    result = {
        "machine": machine(),
        "model": "lightning_configs/reranker.yaml on SciFact train, "
        + (f"{args.train_batches} batches per epoch (a screen at reduced cost), " if args.train_batches else "")
        + (f"trained in {seconds:.0f} s" if seconds else f"reused from an earlier run of this script ({out})"),
        "cisi": {"queries": report["queries"], "candidates": report["candidates"], "depth": report["depth"],
                 "relevant_share": round(float(relevant.mean()), 4)},
        "systems": systems,
        "recalibration_ece_on_held_out_queries": curve,
        "decisions": decisions,
        "in_domain": inside,
        "repeats": args.repeats,
        "seconds_scoring": round(time.perf_counter() - start, 1),
    }  # fmt: skip
    write_results("shift", args.quick, result)
    import json

    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
