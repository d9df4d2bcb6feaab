"""`unirank evaluate`: score a data set with one or more models; write metrics.json, a reliability
diagram (reliability.png) and per-category tables; print a compact summary."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import polars as pl

from unirank.atomic import atomic_path
from unirank.data.readers import read_qrels
from unirank.data.tables import Tables
from unirank.evaluation.bootstrap import (
    calibrated_ece_reference,
    ece_fast,
    grouped_interval,
    mean_interval,
)
from unirank.evaluation.calibration import (
    both_orders,
    calibration_metrics,
    pairwise_probability,
    reliability_table,
)
from unirank.evaluation.pairwise import pairwise_accuracy
from unirank.evaluation.retrieval import retrieval_metrics
from unirank.evaluation.selective import selective_report
from unirank.evaluation.shift import UNFAMILIAR_ABOVE, accuracy_by_familiarity, novelty_percentiles, shift_report
from unirank.evaluation.thresholds import threshold_report


def score_items(predictor, tables: Tables) -> np.ndarray:
    """The model's logit for every row of tables.items, each (context, item) scored once."""
    return predictor.score_texts(tables.item_contexts(), tables.items["text"].to_list())


def read_items(predictor, tables: Tables) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(logits, the head's inputs, the pooled states) of every row of tables.items from one pass;
    the last two only where the model has a head posterior or a novelty reference to read them."""
    if getattr(predictor, "posterior", None) is None and getattr(predictor, "novelty", None) is None:
        return score_items(predictor, tables), None, None
    return predictor.score_texts_with_features(tables.item_contexts(), tables.items["text"].to_list(), states=True)


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
    for name, predictor in predictors.items():
        if getattr(predictor, "fusion_weight", None) is not None and "first_stage_score" in items.columns:
            systems[f"{name} + first stage"] = predictor.fuse(systems[name], items["first_stage_score"].to_numpy())
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
            prob = 1 / (1 + np.exp(-scores))
            label = relevant.astype(float)
            entry["calibration"] = calibration_metrics(prob, label)
            entry["calibration"]["calibrated_reference"] = calibrated_ece_reference(prob, entry["calibration"]["ece"])
            entry["intervals"]["ece"], _ = grouped_interval(lambda rows: ece_fast(prob[rows], label[rows]), group)
            entry["thresholds"] = threshold_report(prob, label, group, thresholds=thresholds)
            entry["selective"] = selective_report(prob, label)
            entry["_curve"] = (prob, label)
            reference = getattr(predictors[name], "novelty", None)
            if reference is not None:
                entry["shift"] = shift_report(novelty_percentiles(reference, states[name]))
        report["systems"][name] = entry
    return report


def evaluate_preferences(predictors: dict, tables: Tables, thresholds: tuple[float, ...] = (0.5, 0.7, 0.9)) -> dict:
    """Pairwise accuracy against the majority preference (ties excluded, counted), per category,
    pairwise calibration of P(a ≻ b) against the observed preference fraction, and at each
    threshold t the precision of "P(a ≻ b) > t" (each decided pair read in both orders, so t ≥ 0.5
    picks at most one side) with its spread across categories."""
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
    judgments = np.maximum(1, np.round(comps["weight"].fill_null(1.0).to_numpy())).astype(np.int64)
    prompts = comps["group_id"].to_numpy()
    item_a, item_b = comps["_a"].to_numpy(), comps["_b"].to_numpy()
    a, b = item_a[decided], item_b[decided]  # the items of each decided pair
    for name, predictor in predictors.items():
        posterior, reference = getattr(predictor, "posterior", None), getattr(predictor, "novelty", None)
        scores, features, states = read_items(predictor, tables)
        r_a, r_b = scores[item_a], scores[item_b]
        a_wins = p[decided] > 0.5
        chosen = np.where(a_wins, r_a[decided], r_b[decided])
        rejected = np.where(a_wins, r_b[decided], r_a[decided])
        entry = pairwise_accuracy(chosen, rejected, category=categories[decided])
        prob = pairwise_probability(r_a, r_b, predictor.pairwise_link)
        entry["pairwise_calibration"] = calibration_metrics(*both_orders(prob, p))
        entry["pairwise_calibration"]["calibrated_reference"] = calibrated_ece_reference(
            prob, entry["pairwise_calibration"]["ece"], trials=judgments, pairwise=True
        )
        correct = (chosen > rejected).astype(float)
        ids, owner = np.unique(prompts[decided], return_inverse=True)
        entry["n_prompts"] = len(ids)
        sums, counts = np.bincount(owner, correct, len(ids)), np.bincount(owner, minlength=len(ids))
        # {prompt: [correct, pairs]}: what a paired comparison between systems resamples
        entry["per_group"] = {"accuracy": {str(g): [float(s), int(c)] for g, s, c in zip(ids, sums, counts)}}
        entry["intervals"] = {
            "accuracy": grouped_interval(lambda rows: float(correct[rows].mean()), prompts[decided])[0],
            "pairwise_ece": grouped_interval(lambda rows: ece_fast(*both_orders(prob[rows], p[rows])), prompts)[0],
        }
        entry["pairwise_link"] = predictor.pairwise_link
        entry["selective"] = selective_report(prob[decided], p[decided])
        sided, truth = both_orders(prob[decided], p[decided])
        entry["thresholds"] = threshold_report(sided, truth, np.tile(categories[decided], 2), thresholds=thresholds)
        if posterior is not None:
            predictive, std_error = posterior.pair_probability(
                r_a[decided], r_b[decided], features[a], features[b], predictor.pairwise_link
            )
            entry["selective_uncertainty"] = uncertainty_selective(predictive, prob[decided], p[decided], std_error,
                                                                   prompts[decided])  # fmt: skip
        if reference is not None:
            percentile = novelty_percentiles(reference, states)
            unfamiliar = np.maximum(percentile[a], percentile[b]) > UNFAMILIAR_ABOVE
            entry["shift"] = shift_report(percentile) | {
                "pairs": accuracy_by_familiarity(unfamiliar, correct, prompts[decided])
            }
        entry["_curve"] = both_orders(prob, p)
        report["systems"][name] = entry
    return report


def uncertainty_selective(predictive, prob, label, std_error, group) -> dict:
    """Selective prediction ranked by the posterior predictive probability (the margin moderated
    by its standard error), and its AURC minus that of |p − 0.5| alone, with a 95 % bootstrap
    interval over groups (negative: the model's uncertainty abstains better)."""
    report = selective_report(predictive, label)
    gain, _ = grouped_interval(
        lambda rows: (
            selective_report(predictive[rows], label[rows])["aurc"] - selective_report(prob[rows], label[rows])["aurc"]
        ),
        group,
    )
    report["aurc_minus_plain"] = report["aurc"] - selective_report(prob, label)["aurc"]
    report["aurc_minus_plain_interval"] = gain
    report["margin_std_error_median"] = float(np.median(std_error)) if len(std_error) else float("nan")
    return report


def reliability_plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str, n_bins: int = 15
) -> None:
    """Reliability diagram (mean label per probability bin, one line per model) over a histogram of
    the predicted probabilities."""
    tables = {
        name: (reliability_table(prob, label, n_bins), calibration_metrics(prob, label, n_bins)["ece"])
        for name, (prob, label) in curves.items()
    }
    reliability_plot_from_tables(tables, path, title)


def reliability_plot_from_tables(tables: dict[str, tuple[list[dict], float]], path: Path, title: str) -> None:
    """The same diagram from reliability tables ({name: (rows of reliability_table, ECE)}): the
    observed frequency against the mean probability of each bin above, the bin counts below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for offset, (name, (table, ece)) in enumerate(tables.items()):
        filled = [row for row in table if row["count"]]
        top.plot([r["mean_prob"] for r in filled], [r["mean_label"] for r in filled], marker="o",
                 label=f"{name} (ECE {ece:.3f})")  # fmt: skip
        width = (table[0]["high"] - table[0]["low"]) / (len(tables) + 1)
        bottom.bar([r["low"] + width * (offset + 0.5) for r in table], [r["count"] for r in table], width=width,
                   label=name)  # fmt: skip
    top.set_ylabel("observed frequency")
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    bottom.set_yscale("log")
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
    """A compact fixed-width table, one line per system, each figure with its 95 % bootstrap
    interval over groups (queries, prompts, problems) and the sample size."""

    def ci(entry: dict, metric: str) -> str:
        low, high = entry.get("intervals", {}).get(metric, [float("nan")] * 2)
        return f"[{low:.3f}, {high:.3f}]"

    if report["domain"] == "retrieval":
        recall = f"recall@{report.get('depth', 100)}"
        head = f"{'system':40s} {'ndcg@10 [95% CI]':>24s} {'mrr@10':>7s} {recall:>10s} "
        head += f"{'ECE [95% CI]':>24s} {'Brier':>7s}"
        lines = [head]
        for name, e in report["systems"].items():
            cal = e.get("calibration")
            ece = f"{cal['ece']:.4f} {ci(e, 'ece')}" if cal else ""
            brier = f"{cal['brier']:.4f}" if cal else ""
            lines.append(
                f"{name:40s} {e['ndcg@10']:.4f} {ci(e, 'ndcg@10'):>17s} {e['mrr@10']:7.4f} {e[recall]:10.4f} "
                f"{ece:>24s} {brier:>7s}"
            )
        lines.append(f"({report['queries']} queries, {report['candidates']} candidates)")
        for name, e in report["systems"].items():
            lines += [_threshold_line(name, row, "queries", "σ") for row in e.get("thresholds", [])]
    elif report["domain"] == "process":
        head = f"{'system':24s} {'step F1':>8s} {'1st err':>8s} {'lowest':>8s} {'pairs':>8s} "
        head += f"{'step ECE [95% CI]':>25s} {'step Brier':>10s}"
        lines = [head]
        for name, e in report["systems"].items():
            lines.append(
                f"{name:24s} {e['wrong_step_f1']:8.4f} {e['first_error_accuracy']:8.4f} "
                f"{e['first_error_location_accuracy']:8.4f} "
                f"{e['solution_pair_accuracy']:8.4f} {e['step_ece']:.4f} {ci(e, 'step_ece'):>18s} "
                f"{e['step_brier']:10.4f}"
            )
            lines.append(f"({e['steps']} steps of {e.get('n_problems', '?')} problems)")
    else:
        head = f"{'system':40s} {'accuracy [95% CI]':>25s} {'pairs':>6s} {'pair ECE [95% CI]':>25s} {'pair Brier':>10s}"
        lines = [head]
        for name, e in report["systems"].items():
            cal = e["pairwise_calibration"]
            lines.append(
                f"{name:40s} {e['accuracy']:.4f} {ci(e, 'accuracy'):>18s} {e['n']:6d} "
                f"{cal['ece']:.4f} {ci(e, 'pairwise_ece'):>18s} {cal['brier']:10.4f}"
            )
        lines.append(f"(ties excluded from accuracy: {report['ties_excluded']}; intervals resample prompts)")
        for name, e in report["systems"].items():
            lines += [_threshold_line(name, row, "categories", "P(a ≻ b)") for row in e.get("thresholds", [])]
    lines += [_selective_line(name, e) for name, e in report["systems"].items() if "selective" in e]
    lines += [_uncertainty_line(name, e) for name, e in report["systems"].items() if "selective_uncertainty" in e]
    lines += [_calibrated_line(name, e) for name, e in report["systems"].items() if _calibration(e)]
    lines += [_shift_line(name, e["shift"]) for name, e in report["systems"].items() if "shift" in e]
    return "\n".join(lines)


def _calibration(entry: dict) -> dict | None:
    """The entry's calibration block that carries a calibrated reference (any domain), or None."""
    for key in ("calibration", "pairwise_calibration", "step_calibration"):
        if (entry.get(key) or {}).get("calibrated_reference"):
            return entry[key]
    return None


def _calibrated_line(name: str, entry: dict) -> str:
    """The observed ECE beside what a perfectly calibrated model would read on the same sample."""
    cal = _calibration(entry)
    ref = cal["calibrated_reference"]
    low, high = ref["interval"]
    return (
        f"{name:40s} ECE {cal['ece']:.4f}; a perfectly calibrated model would read {ref['mean']:.4f} "
        f"[{low:.4f}, {high:.4f}] on this sample (p = {ref['p_value']:.2f})"
    )


def _shift_line(name: str, shift: dict) -> str:
    """How many inputs are unlike the training data, and (pairs) the accuracy on and off them."""
    line = (
        f"{name:40s} novelty: {shift['unfamiliar_share']:.1%} of {shift['inputs']} inputs beyond the "
        f"{shift['unfamiliar_above']:.0%} percentile of the training inputs (≈{shift['expected_in_distribution']:.0%} "
        f"in distribution), median percentile {shift['median_percentile']:.2f}"
    )
    for side, e in shift.get("pairs", {}).items():
        if e["n"]:
            low, high = e["interval"]
            line += f"; accuracy {e['accuracy']:.3f} [{low:.3f}, {high:.3f}] on {e['n']} {side} pairs"
    return line


def _uncertainty_line(name: str, entry: dict) -> str:
    """The same, abstaining by the posterior predictive probability (the head's uncertainty included)."""
    sel = entry["selective_uncertainty"]
    low, high = sel["aurc_minus_plain_interval"]
    return (
        f"{name:40s} ... by the head posterior: {sel['accuracy_at'].get('80%', float('nan')):.3f} on 80 %; AURC "
        f"{sel['aurc']:.3f}, {sel['aurc_minus_plain']:+.4f} [{low:+.4f}, {high:+.4f}] against |p − 0.5| alone"
    )


def _threshold_line(name: str, row: dict, groups: str, reading: str) -> str:
    """Precision and recall of "probability > t", and the spread of precision across groups."""
    precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
    if row.get("precision_interval"):
        precision += " [{:.3f}, {:.3f}]".format(*row["precision_interval"])
    recall = "-" if row["recall"] is None else f"{row['recall']:.3f}"
    spread = "-" if row["group_precision_std"] is None else f"{row['group_precision_std']:.3f}"
    return (
        f"{name:40s} {reading} > {row['threshold']:.2f}: {row['predicted_positive']:6d} predicted, precision "
        f"{precision}, recall {recall}, precision spread across {row['groups_with_predictions']} {groups} {spread}"
    )


def _selective_line(name: str, entry: dict) -> str:
    """Accuracy of the decisions p > 0.5 when abstaining on the least certain (smallest |p − 0.5|)."""
    sel = entry["selective"]
    at, promised = sel["accuracy_at"], sel.get("promised_at", {})
    nan = float("nan")
    return (
        f"{name:40s} decisions p > 0.5, most certain first: accuracy {at.get('100%', nan):.3f} on all "
        f"{sel['n']}, {at.get('80%', nan):.3f} on 80 % (the probabilities promise {promised.get('80%', nan):.3f}; "
        f"a calibrated model this accurate gains at most {sel.get('calibrated_gain_bound_80', nan):+.3f}), "
        f"{at.get('50%', nan):.3f} on 50 %; AURC {sel['aurc']:.3f}"
    )
