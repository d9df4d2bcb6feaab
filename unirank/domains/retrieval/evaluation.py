"""Reranking quality and calibration of retrieval models: the first stage, each model and each
model fused with the first stage, side by side (NDCG@10, MRR@10, recall at the depth; ECE,
precision and recall of σ(score) > t and their spread across queries)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from unirank.data.tables import Tables
from unirank.domains.retrieval.readers import read_qrels
from unirank.evaluation.reading import read_items
from unirank.evaluation.report import interval_text, threshold_lines
from unirank.fitting.links import probability
from unirank.metrics.bootstrap import calibrated_ece_reference, grouped_interval, mean_interval
from unirank.metrics.calibration import calibration_error, calibration_metrics
from unirank.metrics.retrieval import retrieval_metrics
from unirank.metrics.selective import selective_report
from unirank.metrics.shift import novelty_percentiles, shift_report
from unirank.metrics.thresholds import threshold_report


def list_qrels(tables: Tables, folder: str | Path) -> dict[str, dict[str, int]]:
    """The judgments to score reranked lists against: folder/qrels.tsv (a mined folder keeps its
    split's qrels), so a relevant document the first stage missed still counts (NDCG's ideal order
    and recall include it, a query whose relevant documents were all missed scores 0: BEIR's
    reranking protocol). Without it, the items' labels, with a warning: the metrics then cover
    only what the lists hold."""
    path = Path(folder) / "qrels.tsv"
    groups = set(tables.groups["group_id"].to_list())
    if path.exists():
        return {q: docs for q, docs in read_qrels(path).items() if q in groups}
    warnings.warn(
        f"{folder}: no qrels.tsv, so relevance is read from the items' labels: relevant documents missing "
        "from the candidate lists are not counted (NDCG and recall read higher than BEIR's protocol)",
        stacklevel=2,
    )
    qrels: dict = {}
    for g, i, label in tables.items.select("group_id", "item_id", "label").iter_rows():
        qrels.setdefault(g, {})[i] = int((label or 0) > 0)
    return qrels


def evaluate_retrieval(
    predictors: dict,
    tables: Tables,
    qrels: dict[str, dict[str, int]],
    k: int = 10,
    thresholds: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9),
) -> dict:
    """Rerank each query's first-stage candidates; first stage and every model side by side, with
    precision and recall of "σ(score) > t" at each threshold and their spread across queries."""
    items = tables.items
    report = {"domain": "retrieval", "queries": tables.groups.height, "candidates": items.height, "systems": {}}
    systems = {}
    if "first_stage_score" in items.columns:
        systems["first stage"] = items["first_stage_score"].to_numpy()
    states = {}
    for name, predictor in predictors.items():
        systems[name], _, states[name] = read_items(predictor, tables)
    relevant = np.array([qrels.get(g, {}).get(i, 0) > 0 for g, i in items.select("group_id", "item_id").iter_rows()])
    report["headline"] = {}  # per model, the ranking it is read by: fused where validation chose γ > 0
    for name, predictor in predictors.items():
        report["headline"][name] = name
        if getattr(predictor, "fusion_weight", None) is not None and "first_stage_score" in items.columns:
            systems[f"{name} + first stage"] = predictor.fuse(systems[name], items["first_stage_score"].to_numpy())
            if predictor.fusion_weight > 0:
                report["headline"][name] = f"{name} + first stage"
    group = items["group_id"].to_numpy()
    depth = int(items.group_by("group_id").len()["len"].max())
    report["depth"] = depth
    for name, scores in systems.items():
        run: dict[str, dict[str, float]] = {}
        for (g, i), s in zip(items.select("group_id", "item_id").iter_rows(), scores):
            run.setdefault(g, {})[i] = float(s)
        entry = retrieval_metrics(run, qrels, k=k, per_query=True, depth=depth)
        per_query = entry.pop("per_query")
        entry["n_queries"] = len(run) - entry["queries_without_relevant"]
        entry["intervals"] = {m: mean_interval(np.array(list(v.values()))) for m, v in per_query.items()}
        entry["per_group"] = per_query  # {metric: {query: value}}: paired comparisons between systems
        if name in predictors:
            prob = probability(scores)
            label = relevant.astype(float)
            entry["calibration"] = calibration_metrics(prob, label)
            entry["calibration"]["calibrated_reference"] = calibrated_ece_reference(prob, entry["calibration"]["ece"])
            entry["intervals"]["ece"], _ = grouped_interval(
                lambda rows: calibration_error(prob[rows], label[rows]), group
            )
            entry["thresholds"] = threshold_report(prob, label, group, thresholds=thresholds)
            entry["selective"] = selective_report(prob, label)
            entry["_curve"] = (prob, label)
            reference = getattr(predictors[name], "novelty", None)
            if reference is not None:
                entry["shift"] = shift_report(novelty_percentiles(reference, states[name]))
        report["systems"][name] = entry
    return report


def summary_lines(report: dict) -> list[str]:
    """One line per system: NDCG@10, MRR@10, recall at the depth, ECE and Brier; then the thresholds."""
    recall = f"recall@{report.get('depth', 100)}"
    head = f"{'system':40s} {'ndcg@10 [95% CI]':>24s} {'mrr@10':>7s} {recall:>10s} "
    head += f"{'ECE [95% CI]':>24s} {'Brier':>7s}"
    lines = [head]
    for name, e in report["systems"].items():
        cal = e.get("calibration")
        ece = f"{cal['ece']:.4f} {interval_text(e, 'ece')}" if cal else ""
        brier = f"{cal['brier']:.4f}" if cal else ""
        lines.append(
            f"{name:40s} {e['ndcg@10']:.4f} {interval_text(e, 'ndcg@10'):>17s} {e['mrr@10']:7.4f} {e[recall]:10.4f} "
            f"{ece:>24s} {brier:>7s}"
        )
    lines.append(f"({report['queries']} queries, {report['candidates']} candidates)")
    for name, ranking in report.get("headline", {}).items():
        if ranking != name:
            e = report["systems"][ranking]
            lines.append(f"{name}: ranked by '{ranking}' (validation chose γ > 0): NDCG@10 {e['ndcg@10']:.4f} "
                         f"{interval_text(e, 'ndcg@10')}; σ(score) of '{name}' stays the probability")  # fmt: skip
    return lines + threshold_lines(report, "queries", "σ")
