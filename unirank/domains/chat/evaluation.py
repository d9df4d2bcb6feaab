"""Reward models on preference pairs: pairwise accuracy (ties excluded, per category), pairwise
calibration of P(a ≻ b) against the observed preference fraction, precision of P(a ≻ b) > t."""

from __future__ import annotations

import numpy as np

from unirank.data.tables import Tables
from unirank.evaluation.reading import read_items
from unirank.evaluation.report import interval_text, threshold_lines
from unirank.metrics.bootstrap import calibrated_ece_reference, grouped_interval
from unirank.metrics.calibration import both_orders, calibration_error, calibration_metrics, pairwise_probability
from unirank.metrics.pairwise import pairwise_accuracy
from unirank.metrics.selective import selective_report, uncertainty_selective
from unirank.metrics.shift import UNFAMILIAR_ABOVE, accuracy_by_familiarity, novelty_percentiles, shift_report
from unirank.metrics.thresholds import threshold_report


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
            "pairwise_ece": grouped_interval(
                lambda rows: calibration_error(*both_orders(prob[rows], p[rows])), prompts
            )[0],
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


def summary_lines(report: dict) -> list[str]:
    """One line per system: accuracy, pairs, pairwise ECE and Brier; then the thresholds."""
    head = f"{'system':40s} {'accuracy [95% CI]':>25s} {'pairs':>6s} {'pair ECE [95% CI]':>25s} {'pair Brier':>10s}"
    lines = [head]
    for name, e in report["systems"].items():
        cal = e["pairwise_calibration"]
        lines.append(
            f"{name:40s} {e['accuracy']:.4f} {interval_text(e, 'accuracy'):>18s} {e['n']:6d} "
            f"{cal['ece']:.4f} {interval_text(e, 'pairwise_ece'):>18s} {cal['brier']:10.4f}"
        )
    lines.append(f"(ties excluded from accuracy: {report['ties_excluded']}; intervals resample prompts)")
    return lines + threshold_lines(report, "categories", "P(a ≻ b)")
