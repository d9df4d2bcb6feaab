"""The final calibration: σ(a·r + b) fitted on a held-out split and folded into the scorer's head,
only where it helps on groups its fit did not see.

Before folding, the fit is cross-fitted over the split's groups (`unirank.metrics.cross_fit`): the
fit is folded in only if that held-out ECE is no worse than the model's own. A split of fewer than
two groups cannot be held out, so nothing is folded there; the record says why.

Explicit inputs (a `Scorer`, a `GroupDataset`, the pairwise reading): called when training ends
(`unirank.training.callbacks.FinalFits`). Math: docs/math.md, "The final calibration".
"""

from __future__ import annotations

import numpy as np

from unirank.metrics.bootstrap import grouped_interval
from unirank.metrics.calibration import calibration_error, calibration_metrics, reliability_table
from unirank.metrics.cross_fit import Evidence, recalibrate_scores


def calibrate_on(scorer, dataset, reading: str) -> dict | None:
    """Fit σ(a·r + b) on a held-out split (every item of its groups: the lists it is scored on;
    process models: their labelled steps, not the solutions that aggregate them) and fold it into
    the head. Returns the record kept as `scorer.final_calibration` (and so in the export's
    unirank.json): the fit, the split's ECE and Brier before and after, and for retrieval lists
    with first-stage scores the fusion weight."""
    if dataset is None or dataset.n_items == 0:
        print("final calibration skipped: no validation split")
        return None
    groups = dataset.item_group_index
    what = f"final calibration: scoring {dataset.n_items:,} validation items"
    scores = scorer.score_rows(dataset, np.arange(dataset.n_items), progress=what)
    # the head's own outputs: a solution's score aggregates its steps', and a step truncation cut has none
    label = np.where(np.isnan(scores) | dataset.aggregated, np.nan, dataset.label)
    scores = np.nan_to_num(scores)
    evidence = Evidence(scores, groups, label=label, comp_a=dataset.comp_a, comp_b=dataset.comp_b,
                        p=dataset.p, weight=dataset.weight)  # fmt: skip
    with_bias = scorer.has_output_bias()
    try:
        fit = evidence.fit(np.arange(len(scores)), reading, with_bias)
    except ValueError as error:
        print(f"final calibration skipped: {error}")
        return None

    def measure(r: np.ndarray) -> dict:
        """ECE and Brier on the split; the ECE with a 95 % bootstrap interval over its groups."""
        prob, truth, owner = evidence.readings(r, reading)
        m = calibration_metrics(prob, truth)
        row = {"ece": round(m["ece"], 5), "brier": round(m["brier"], 5), "n": m["n"]}
        row["ece_interval"], row["groups"] = grouped_interval(
            lambda rows: calibration_error(prob[rows], truth[rows]), owner
        )
        return row

    held_out, reason = held_out_check(evidence, reading, with_bias)
    applied = reason is None
    if applied:
        scorer.fold_affine(fit.a, fit.b)
    calibrated = fit.a * scores + fit.b if applied else scores
    record = {
        "method": "platt: sigmoid(a * logit + b), folded into the head",
        "a": fit.a if applied else 1.0,
        "b": fit.b if applied else 0.0,
        "fitted_on": f"validation split: {fit.n} {fit.evidence}",
        "applied": applied,
        "before": measure(scores),
        "after": measure(calibrated),
        "held_out": held_out,
        "reliability": reliability_record(*evidence.readings(calibrated, reading)[:2]),
        "list_depth": int(np.median(np.bincount(groups))),  # the candidates per list it was fitted on
    }
    if not applied:
        record |= {"reason": reason, "fit_not_applied": {"a": fit.a, "b": fit.b}}
    if fit.evidence == "labels" and not np.isnan(dataset.teacher).any():
        from unirank.metrics.fusion import fit_fusion_weight

        record["fusion"] = fit_fusion_weight(calibrated, dataset.teacher, np.nan_to_num(dataset.label), groups)
    if applied:
        print(
            f"final calibration σ({fit.a:.3f}·r + {fit.b:.3f}) on {fit.n} validation {fit.evidence}: "
            f"ECE {record['before']['ece']:.4f} → {record['after']['ece']:.4f} in-sample, "
            f"{held_out['before']['ece']:.4f} → {held_out['after']['ece']:.4f} held out "
            f"({held_out['folds']} folds of {len(dataset)} validation groups)"
        )
    else:
        print(f"final calibration not applied: {reason}")
    scorer.final_calibration = record
    return record


THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def reliability_record(prob: np.ndarray, truth: np.ndarray, n_bins: int = 10) -> dict:
    """What the model card shows of the probabilities on the validation split: the non-empty bins of
    `metrics.calibration.reliability_table` (range, count, mean probability and mean outcome); and
    at each threshold t the decisions P ≥ t: how many, their precision (the mean outcome) and their
    recall (of the total outcome)."""
    prob, truth = np.asarray(prob, np.float64), np.asarray(truth, np.float64)
    bins = [row for row in reliability_table(prob, truth, n_bins) if row["count"]]
    total = float(truth.sum())
    thresholds = []
    for t in THRESHOLDS:
        kept = prob >= t
        thresholds.append({
            "threshold": t, "decisions": int(kept.sum()),
            "precision": round(float(truth[kept].mean()), 4) if kept.any() else None,
            "recall": round(float(truth[kept].sum() / total), 4) if total else None,
        })  # fmt: skip
    return {"bins": bins, "thresholds": thresholds}


def held_out_check(evidence: Evidence, reading: str, with_bias: bool) -> tuple[dict | None, str | None]:
    """(the held-out ECE before and after, cross-fitted over the evidence's groups; why the fit must
    not be folded in, or None): refused where the held-out ECE rises or there are fewer than 2 groups."""
    try:
        check = recalibrate_scores(evidence, reading, with_bias)
    except ValueError as error:
        return None, f"no held-out check possible ({error})"
    held_out = {key: check[key] for key in ("folds", "before", "after")}
    before, after = held_out["before"]["ece"], held_out["after"]["ece"]
    if after > before:
        return held_out, f"it would raise the held-out ECE from {before:.4f} to {after:.4f} ({check['folds']} folds)"
    return held_out, None
