"""Process reward metrics (PRMBench-style): wrong-step detection, first-error location, solution
pairs per error class, and step-level calibration."""

from __future__ import annotations

import numpy as np
import polars as pl

from unirank.data.tables import Tables
from unirank.evaluation.report import interval_text
from unirank.fitting.links import probability
from unirank.metrics.bootstrap import calibrated_ece_reference, grouped_interval
from unirank.metrics.calibration import calibration_error, calibration_metrics
from unirank.metrics.pairwise import pairwise_accuracy
from unirank.metrics.selective import selective_report
from unirank.metrics.shift import novelty_percentiles, shift_report


def score_solutions(predictor, tables: Tables, states: bool = False) -> tuple:
    """(solution logits, step logits per solution) for every row of tables.items, one forward each;
    states: also each solution input's pooled final state (what novelty reads)."""
    scorer = predictor.scorer
    encoded = scorer.encode(
        tables.item_contexts(), tables.items["text"].to_list(), steps=tables.items["steps"].to_list()
    )
    return scorer.score_encoded_steps(encoded, predictor.bf16, states=states)


def step_metrics(
    step_probs: list[np.ndarray],
    step_labels: list[list[float | None]],
    threshold: float = 0.5,
    groups: np.ndarray | None = None,
) -> dict:
    """Wrong-step detection ("σ(r_i) < threshold" flags step i as wrong; the positive class is a
    wrong step): precision, recall, F1; over solutions that have a wrong step, first-error accuracy
    (the first flagged step is the first wrong one) and first-error location accuracy (the least
    probable step is the first wrong one: no threshold, so a calibrated model that rarely puts a
    step below 0.5 is read by its order); step ECE / Brier of σ(r_i) against correctness. Steps cut
    by truncation or unlabeled are skipped. groups: each solution's problem; given, the step ECE,
    Brier and both first-error accuracies get 95 % bootstrap intervals resampling whole problems
    ("intervals", "n_problems")."""
    probs, labels, step_owner, error_owner, first_hits, lowest_hits = [], [], [], [], [], []
    for solution, (p, lab) in enumerate(zip(step_probs, step_labels)):
        kept = [(pi, li) for pi, li in zip(p, lab or []) if li is not None]
        probs += [pi for pi, _ in kept]
        labels += [li for _, li in kept]
        step_owner += [solution] * len(kept)
        truth = next((i for i, li in enumerate(lab or []) if li == 0.0), None)
        if truth is not None and truth < len(p):
            predicted = next((i for i, pi in enumerate(p) if pi < threshold), None)
            error_owner.append(solution)
            first_hits.append(float(predicted == truth))
            lowest_hits.append(float(int(np.argmin(p)) == truth))
    probs, labels, first_hits, lowest_hits = (np.asarray(x) for x in (probs, labels, first_hits, lowest_hits))
    flagged, wrong = probs < threshold, labels == 0.0
    tp = int((flagged & wrong).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / wrong.sum() if wrong.any() else 0.0
    calibration = calibration_metrics(probs, labels)
    selective = selective_report(probs, labels)
    report = {
        "steps": int(probs.size),
        "wrong_steps": int(wrong.sum()),
        "wrong_step_precision": float(precision),
        "wrong_step_recall": float(recall),
        "wrong_step_f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        "first_error_accuracy": float(first_hits.mean()) if first_hits.size else float("nan"),
        "first_error_location_accuracy": float(lowest_hits.mean()) if lowest_hits.size else float("nan"),
        "solutions_with_error": int(first_hits.size),
        "step_ece": calibration["ece"],
        "step_brier": calibration["brier"],
        "step_calibration": {
            "ece": calibration["ece"],
            "calibrated_reference": calibrated_ece_reference(probs, calibration["ece"]) if probs.size else None,
        },
        "selective": selective,
        "_curve": (probs, labels),
    }
    if groups is not None:
        problem = np.asarray(groups)[np.asarray(step_owner, dtype=np.int64)]
        ece, n = grouped_interval(lambda rows: calibration_error(probs[rows], labels[rows]), problem)
        brier, _ = grouped_interval(lambda rows: float(np.mean((probs[rows] - labels[rows]) ** 2)), problem)
        error_problem = np.asarray(groups)[np.asarray(error_owner, dtype=np.int64)]
        first = grouped_interval(lambda rows: float(first_hits[rows].mean()), error_problem)[0]
        lowest = grouped_interval(lambda rows: float(lowest_hits[rows].mean()), error_problem)[0]
        report["intervals"] = {
            "step_ece": ece, "step_brier": brier, "first_error_accuracy": first, "first_error_location_accuracy": lowest
        }  # fmt: skip
        report["n_problems"] = n
    return report


def evaluate_process(predictors: dict, tables: Tables) -> dict:
    """Step metrics and solution-level pairwise accuracy (original ≻ modified) per error class."""
    comps = tables.indexed_comparisons()
    error_class = (
        tables.items["error_class"]
        if "error_class" in tables.items.columns
        else pl.Series([None] * tables.items.height, dtype=pl.String)
    )
    comps = comps.with_columns(pl.Series("error_class", error_class.gather(comps["_b"])))  # the corrupted side
    report = {"domain": "process", "solutions": tables.items.height, "pairs": comps.height, "systems": {}}
    for name, predictor in predictors.items():
        reference = getattr(predictor, "novelty", None)
        solution_scores, steps, *states = score_solutions(predictor, tables, states=reference is not None)
        entry = step_metrics(
            [probability(s) for s in steps],
            tables.items["step_labels"].to_list(),
            groups=tables.items["group_id"].to_numpy(),
        )
        chosen = np.where(comps["p"].to_numpy() >= 0.5, solution_scores[comps["_a"]], solution_scores[comps["_b"]])
        rejected = np.where(comps["p"].to_numpy() >= 0.5, solution_scores[comps["_b"]], solution_scores[comps["_a"]])
        pairs = pairwise_accuracy(chosen, rejected, category=comps["error_class"].fill_null("all").to_list())
        entry["solution_pair_accuracy"] = pairs["accuracy"]
        entry["per_category"] = pairs["per_category"]
        entry["aggregation"] = predictor.scorer.adapter.aggregation
        if reference is not None:
            entry["shift"] = shift_report(novelty_percentiles(reference, states[0]))
        report["systems"][name] = entry
    return report


def summary_lines(report: dict) -> list[str]:
    """One line per system: wrong-step F1, first-error accuracy, solution pairs, step ECE and Brier."""
    head = f"{'system':24s} {'step F1':>8s} {'1st err':>8s} {'lowest':>8s} {'pairs':>8s} "
    head += f"{'step ECE [95% CI]':>25s} {'step Brier':>10s}"
    lines = [head]
    for name, e in report["systems"].items():
        lines.append(
            f"{name:24s} {e['wrong_step_f1']:8.4f} {e['first_error_accuracy']:8.4f} "
            f"{e['first_error_location_accuracy']:8.4f} "
            f"{e['solution_pair_accuracy']:8.4f} {e['step_ece']:.4f} {interval_text(e, 'step_ece'):>18s} "
            f"{e['step_brier']:10.4f}"
        )
        lines.append(f"({e['steps']} steps of {e.get('n_problems', '?')} problems)")
    return lines
