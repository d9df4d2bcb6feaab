"""`unirank evaluate`: score a data set with one or more models; write metrics.json, a reliability
diagram (reliability.png) and per-category tables; print a compact summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from unirank.atomic import atomic_path
from unirank.data.tables import Tables
from unirank.evaluation.calibration import (
    both_orders,
    calibration_metrics,
    pairwise_calibration,
    pairwise_probability,
    reliability_table,
)
from unirank.evaluation.pairwise import pairwise_accuracy
from unirank.evaluation.retrieval import retrieval_metrics
from unirank.evaluation.thresholds import threshold_report


def score_items(predictor, tables: Tables) -> np.ndarray:
    """The model's logit for every row of tables.items, each (context, item) scored once."""
    return predictor.score_texts(tables.item_contexts(), tables.items["text"].to_list())


def evaluate_retrieval(predictors: dict, tables: Tables, qrels: dict[str, dict[str, int]], k: int = 10) -> dict:
    """Rerank each query's first-stage candidates; first stage and every model side by side."""
    items = tables.items
    report = {"domain": "retrieval", "queries": tables.groups.height, "candidates": items.height, "systems": {}}
    systems = {}
    if "first_stage_score" in items.columns:
        systems["first stage"] = items["first_stage_score"].to_numpy()
    for name, predictor in predictors.items():
        systems[name] = score_items(predictor, tables)
    relevant = np.array([qrels.get(g, {}).get(i, 0) > 0 for g, i in items.select("group_id", "item_id").iter_rows()])
    for name, scores in systems.items():
        run: dict[str, dict[str, float]] = {}
        for (g, i), s in zip(items.select("group_id", "item_id").iter_rows(), scores):
            run.setdefault(g, {})[i] = float(s)
        entry = retrieval_metrics(run, qrels, k=k)
        if name != "first stage":
            prob = 1 / (1 + np.exp(-scores))
            entry["calibration"] = calibration_metrics(prob, relevant.astype(float))
            entry["thresholds"] = threshold_report(prob, relevant.astype(float), items["group_id"].to_numpy())
            entry["_curve"] = (prob, relevant.astype(float))
        report["systems"][name] = entry
    return report


def evaluate_preferences(predictors: dict, tables: Tables) -> dict:
    """Pairwise accuracy against the majority preference (ties excluded, counted), per category,
    and pairwise calibration of P(a ≻ b) against the observed preference fraction."""
    comps = tables.indexed_comparisons().join(tables.groups.select("group_id", "category"), on="group_id", how="left")
    p = comps["p"].to_numpy()
    decided = p != 0.5
    report = {
        "domain": "preferences",
        "comparisons": comps.height,
        "ties_excluded": int((~decided).sum()),
        "systems": {},
    }
    categories = comps["category"].fill_null("all").to_numpy()
    for name, predictor in predictors.items():
        scores = score_items(predictor, tables)
        r_a, r_b = scores[comps["_a"].to_numpy()], scores[comps["_b"].to_numpy()]
        a_wins = p[decided] > 0.5
        chosen = np.where(a_wins, r_a[decided], r_b[decided])
        rejected = np.where(a_wins, r_b[decided], r_a[decided])
        entry = pairwise_accuracy(chosen, rejected, category=categories[decided])
        calibration = pairwise_calibration(r_a, r_b, p, link=predictor.pairwise_link)
        entry["pairwise_calibration"] = calibration
        entry["pairwise_link"] = predictor.pairwise_link
        entry["_curve"] = both_orders(pairwise_probability(r_a, r_b, predictor.pairwise_link), p)
        report["systems"][name] = entry
    return report


def reliability_plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str, n_bins: int = 15
) -> None:
    """Reliability diagram (mean label per probability bin, one line per model) over a histogram of
    the predicted probabilities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    edges = np.linspace(0, 1, n_bins + 1)
    for name, (prob, label) in curves.items():
        table = [row for row in reliability_table(prob, label, n_bins) if row["count"]]
        ece = calibration_metrics(prob, label, n_bins)["ece"]
        top.plot(
            [r["mean_prob"] for r in table],
            [r["mean_label"] for r in table],
            marker="o",
            label=f"{name} (ECE {ece:.3f})",
        )
        bottom.hist(prob, bins=edges, alpha=0.5, label=name)
    top.set_ylabel("observed frequency")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("count")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_report(report: dict, out_dir: str | Path) -> str:
    """metrics.json, reliability.png and per_category.csv into out_dir; returns the printed summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = {name: entry.pop("_curve") for name, entry in report["systems"].items() if "_curve" in entry}
    if curves:
        title = {"retrieval": "σ(score) vs relevance", "process": "σ(step score) vs step correctness"}.get(
            report["domain"], "P(a ≻ b) vs observed preference"
        )
        reliability_plot(curves, out_dir / "reliability.png", title)
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    rows = [
        {"system": name, "category": cat, **values}
        for name, entry in report["systems"].items()
        for cat, values in entry.get("per_category", {}).items()
    ]
    if rows:
        with atomic_path(out_dir / "per_category.csv") as tmp:
            pl.DataFrame(rows).write_csv(tmp)
    summary = summarise(report)
    with atomic_path(out_dir / "summary.txt") as tmp:
        tmp.write_text(summary + "\n")
    return summary


def summarise(report: dict) -> str:
    """A compact fixed-width table, one line per system."""
    if report["domain"] == "retrieval":
        head = f"{'system':24s} {'ndcg@10':>8s} {'mrr@10':>8s} {'recall@100':>10s} {'ECE':>7s} {'Brier':>7s}"
        lines = [head]
        for name, e in report["systems"].items():
            cal = e.get("calibration")
            lines.append(
                f"{name:24s} {e['ndcg@10']:8.4f} {e['mrr@10']:8.4f} {e['recall@100']:10.4f} "
                f"{cal['ece'] if cal else float('nan'):7.4f} {cal['brier'] if cal else float('nan'):7.4f}"
            )
    elif report["domain"] == "process":
        head = f"{'system':24s} {'step F1':>8s} {'1st err':>8s} {'pairs':>8s} {'step ECE':>9s} {'step Brier':>10s}"
        lines = [head]
        for name, e in report["systems"].items():
            lines.append(
                f"{name:24s} {e['wrong_step_f1']:8.4f} {e['first_error_accuracy']:8.4f} "
                f"{e['solution_pair_accuracy']:8.4f} {e['step_ece']:9.4f} {e['step_brier']:10.4f}"
            )
    else:
        head = f"{'system':24s} {'accuracy':>8s} {'pairs':>6s} {'pair ECE':>9s} {'pair Brier':>10s}"
        lines = [head]
        for name, e in report["systems"].items():
            cal = e["pairwise_calibration"]
            lines.append(f"{name:24s} {e['accuracy']:8.4f} {e['n']:6d} {cal['ece']:9.4f} {cal['brier']:10.4f}")
        lines.append(f"(ties excluded from accuracy: {report['ties_excluded']})")
    return "\n".join(lines)
