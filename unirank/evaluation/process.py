"""Process reward metrics (PRMBench-style): wrong-step detection, first-error location, solution
pairs per error class, and step-level calibration."""

from __future__ import annotations

import numpy as np
import polars as pl

from unirank.data.tables import Tables
from unirank.evaluation.bootstrap import ece_fast, grouped_interval
from unirank.evaluation.calibration import calibration_metrics
from unirank.evaluation.pairwise import pairwise_accuracy


def score_solutions(predictor, tables: Tables) -> tuple[np.ndarray, list[np.ndarray]]:
    """(solution logits, step logits per solution) for every row of tables.items, one forward each."""
    module = predictor.module
    encoded = module.adapter.encode(
        module.tokenizer, tables.item_contexts(), tables.items["text"].to_list(), steps=tables.items["steps"].to_list()
    )
    return module.score_encoded_steps(encoded, predictor.bf16)


def step_metrics(step_probs: list[np.ndarray], step_labels: list[list[float | None]], threshold: float = 0.5) -> dict:
    """Wrong-step detection ("σ(r_i) < threshold" flags step i as wrong; the positive class is a
    wrong step): precision, recall, F1; first-error accuracy over solutions that have a wrong step;
    step ECE / Brier of σ(r_i) against correctness. Steps cut by truncation or unlabeled are skipped."""
    probs, labels, first_right, with_error = [], [], 0, 0
    for p, lab in zip(step_probs, step_labels):
        kept = [(pi, li) for pi, li in zip(p, lab or []) if li is not None]
        probs += [pi for pi, _ in kept]
        labels += [li for _, li in kept]
        truth = next((i for i, li in enumerate(lab or []) if li == 0.0), None)
        if truth is not None and truth < len(p):
            with_error += 1
            predicted = next((i for i, pi in enumerate(p) if pi < threshold), None)
            first_right += predicted == truth
    probs, labels = np.asarray(probs), np.asarray(labels)
    flagged, wrong = probs < threshold, labels == 0.0
    tp = int((flagged & wrong).sum())
    precision = tp / flagged.sum() if flagged.any() else 0.0
    recall = tp / wrong.sum() if wrong.any() else 0.0
    calibration = calibration_metrics(probs, labels)
    return {
        "steps": int(probs.size),
        "wrong_steps": int(wrong.sum()),
        "wrong_step_precision": float(precision),
        "wrong_step_recall": float(recall),
        "wrong_step_f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
        "first_error_accuracy": first_right / with_error if with_error else float("nan"),
        "solutions_with_error": with_error,
        "step_ece": calibration["ece"],
        "step_brier": calibration["brier"],
        "_curve": (probs, labels),
    }


def _step_intervals(curve, steps: list[np.ndarray], tables: Tables) -> tuple[dict, int]:
    """95 % bootstrap intervals of step ECE and Brier, resampling whole problems (groups)."""
    probs, labels = curve
    all_labels = tables.items["step_labels"].to_list()
    labelled = [sum(li is not None for li in (lab or [])[: len(s)]) for s, lab in zip(steps, all_labels)]
    problem = np.repeat(tables.items["group_id"].to_numpy(), labelled)
    ece, n = grouped_interval(lambda rows: ece_fast(probs[rows], labels[rows]), problem)
    brier, _ = grouped_interval(lambda rows: float(np.mean((probs[rows] - labels[rows]) ** 2)), problem)
    first_error = []  # per solution with a wrong step: 1 if the first flagged step is the first wrong one
    for s, lab, owner in zip(steps, all_labels, tables.items["group_id"]):
        truth = next((i for i, li in enumerate(lab or []) if li == 0.0), None)
        if truth is not None and truth < len(s):
            flagged = next((i for i, r in enumerate(s) if 1 / (1 + np.exp(-r)) < 0.5), None)
            first_error.append((owner, float(flagged == truth)))
    hits = np.array([hit for _, hit in first_error])
    owners = np.array([owner for owner, _ in first_error])
    accuracy = grouped_interval(lambda rows: float(hits[rows].mean()), owners)[0] if first_error else [np.nan] * 2
    return {"step_ece": ece, "step_brier": brier, "first_error_accuracy": accuracy}, n


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
        solution_scores, steps = score_solutions(predictor, tables)
        entry = step_metrics([1 / (1 + np.exp(-s)) for s in steps], tables.items["step_labels"].to_list())
        chosen = np.where(comps["p"].to_numpy() >= 0.5, solution_scores[comps["_a"]], solution_scores[comps["_b"]])
        rejected = np.where(comps["p"].to_numpy() >= 0.5, solution_scores[comps["_b"]], solution_scores[comps["_a"]])
        pairs = pairwise_accuracy(chosen, rejected, category=comps["error_class"].fill_null("all").to_list())
        entry["solution_pair_accuracy"] = pairs["accuracy"]
        entry["per_category"] = pairs["per_category"]
        entry["aggregation"] = predictor.module.adapter.aggregation
        entry["intervals"], entry["n_problems"] = _step_intervals(entry["_curve"], steps, tables)
        report["systems"][name] = entry
    return report
