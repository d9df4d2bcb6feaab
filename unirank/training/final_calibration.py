"""The final calibration: σ(a·r + b) fitted on a held-out split and folded into the scorer's head.

Explicit inputs (a `Scorer`, a `GroupDataset`, the pairwise reading): called when training ends
(`unirank.training.callbacks.FinalFits`). Math: docs/math.md, "The final calibration".
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from unirank.evaluation.bootstrap import ece_fast, grouped_interval
from unirank.evaluation.calibration import both_orders, calibration_metrics
from unirank.fitting.platt import fit_platt, pairwise_reading


def calibrate_on(scorer, dataset, reading: str) -> dict | None:
    """Fit σ(a·r + b) on a held-out split (every item of its groups: the lists it is scored on;
    process models: every labelled step) and fold it into the head. Returns the record kept as
    `scorer.final_calibration` (and so in the export's unirank.json): the fit, the split's ECE and
    Brier before and after, and for retrieval lists with first-stage scores the fusion weight."""
    if dataset is None or dataset.n_items == 0:
        print("final calibration skipped: no validation split")
        return None
    steps = dataset.step_labels is not None
    groups = dataset.item_group_index
    if steps:  # process models are read, and so calibrated, step by step
        scored = step_scores(scorer, dataset)
        scores, label, groups = scored.logits, scored.labels, groups[scored.solution]
        comp_a = comp_b = p = weight = None
    else:
        scores = scorer.score_rows(dataset, np.arange(dataset.n_items))
        label, comp_a, comp_b, p, weight = dataset.label, dataset.comp_a, dataset.comp_b, dataset.p, dataset.weight
    try:
        fit = fit_platt(
            scores, label=label, comp_a=comp_a, comp_b=comp_b, p=p, weight=weight,
            reading=reading, with_bias=scorer.has_output_bias(),
        )  # fmt: skip
    except ValueError as error:
        print(f"final calibration skipped: {error}")
        return None

    def measure(r: np.ndarray) -> dict:
        """ECE and Brier on the split; the ECE with a 95 % bootstrap interval over its groups."""
        if fit.evidence == "labels":
            known = ~np.isnan(label)
            prob, truth = 1 / (1 + np.exp(-r[known])), label[known]
            owner = groups[known]
        else:
            prob, truth = both_orders(pairwise_reading(r[comp_a], r[comp_b], reading), p)
            owner = np.concatenate([groups[comp_a], groups[comp_a]])
        m = calibration_metrics(prob, truth)
        row = {"ece": round(m["ece"], 5), "brier": round(m["brier"], 5), "n": m["n"]}
        row["ece_interval"], row["groups"] = grouped_interval(lambda rows: ece_fast(prob[rows], truth[rows]), owner)
        return row

    scorer.fold_affine(fit.a, fit.b)
    calibrated = fit.a * scores + fit.b
    record = {
        "method": "platt: sigmoid(a * logit + b), folded into the head",
        "a": fit.a,
        "b": fit.b,
        "fitted_on": f"validation split: {fit.n} {'step ' if steps else ''}{fit.evidence}",
        "before": measure(scores),
        "after": measure(calibrated),
    }
    if fit.evidence == "labels" and not steps and not np.isnan(dataset.teacher).any():
        from unirank.evaluation.fusion import fit_fusion_weight

        record["fusion"] = fit_fusion_weight(calibrated, dataset.teacher, np.nan_to_num(dataset.label), groups)
    print(
        f"final calibration σ({fit.a:.3f}·r + {fit.b:.3f}) on {fit.n} validation {fit.evidence}: "
        f"ECE {record['before']['ece']:.4f} → {record['after']['ece']:.4f} "
        f"(in-sample; {len(dataset)} validation groups)"
    )
    scorer.final_calibration = record
    return record


class StepScores(NamedTuple):
    """Per scored step: its logit, its label (NaN where unlabelled), the data set row of its
    solution, and (when asked) its final-layer input, for the head posterior."""

    logits: np.ndarray
    labels: np.ndarray
    solution: np.ndarray
    features: np.ndarray | None


def step_scores(scorer, dataset, rows=None, block: int = 1024, features: bool = False) -> StepScores:
    """Every step of a data set's solutions (at `rows`, default all), scored."""
    all_labels = dataset.step_labels.to_list()
    scores, labels, inputs, owners = [], [], [], []
    rows = np.arange(dataset.n_items) if rows is None else np.asarray(rows)
    for start in range(0, len(rows), block):
        chunk = rows[start : start + block]
        _, steps, *extra = scorer.score_encoded_steps(dataset.encode(chunk), features=features)
        inputs += extra[0] if extra else []
        for row, step_logits in zip(chunk, steps):
            known = all_labels[int(row)] or []
            scores.append(step_logits)
            owners.append(np.full(len(step_logits), row))
            labels.append([float(known[k]) if k < len(known) and known[k] is not None else np.nan
                           for k in range(len(step_logits))])  # fmt: skip
    truth = np.concatenate([np.asarray(x, dtype=np.float64) for x in labels])
    return StepScores(
        np.concatenate(scores), truth, np.concatenate(owners), np.concatenate(inputs) if features else None
    )
