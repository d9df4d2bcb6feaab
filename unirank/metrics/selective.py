"""Selective prediction: decide only where the model is sure, abstain on the rest.

A decision is "p > 0.5" (a preferred, relevant, correct); its confidence is |p − 0.5|, the only
signal a calibrated probability carries about its own reliability. Sorting decisions by confidence
and keeping the top fraction c gives accuracy(c), the risk-coverage curve (risk = 1 − accuracy);
its area (AURC, lower is better) summarises it, and accuracy at 80 % coverage is what a user who
abstains on the least certain fifth gets. For a calibrated p the expected accuracy of a kept
decision is max(p, 1 − p), so abstaining should raise accuracy, by as much as the probabilities
themselves promise: `promised_at` is that mean of max(p, 1 − p) over the kept decisions.

How far abstaining can go is bounded by how sharp a calibrated model is: with accuracy A over all
decisions and every decision at least even odds, the 20 % left out hold at least 0.5, so the 80 %
kept hold at most (A − 0.1) / 0.8 and the gain at 80 % coverage is at most 0.25·(A − 0.5)
(`calibrated_gain_bound_80`). +5 points at 80 % coverage needs A ≥ 0.70; only a signal that finds
decisions worse than a coin (a shift the model reads backwards) can do better.
"""

from __future__ import annotations

import numpy as np

from unirank.metrics.bootstrap import grouped_interval


def selective_report(prob, label, coverages=(1.0, 0.9, 0.8, 0.5)) -> dict:
    """accuracy at each coverage, AURC over all coverages, and the number of decisions; label > 0.5
    is the truth (ties at exactly 0.5 are the caller's to drop)."""
    p = np.asarray(prob, dtype=np.float64)
    truth = np.asarray(label, dtype=np.float64) > 0.5
    n = p.size
    if n == 0:
        return {"n": 0, "aurc": float("nan"), "accuracy_at": {}, "promised_at": {}}
    correct = ((p > 0.5) == truth).astype(np.float64)
    order = np.argsort(-np.abs(p - 0.5), kind="stable")
    counts = np.arange(1, n + 1)
    running = np.cumsum(correct[order]) / counts  # accuracy of the k most confident
    promised = np.cumsum(np.maximum(p, 1 - p)[order]) / counts
    kept = {f"{c:.0%}": max(1, int(round(c * n))) - 1 for c in coverages}
    return {
        "n": int(n),
        "aurc": float(np.mean(1.0 - running)),
        "accuracy_at": {c: float(running[k]) for c, k in kept.items()},
        "promised_at": {c: float(promised[k]) for c, k in kept.items()},
        # a calibrated model is never below chance (A = mean max(p, 1 − p) ≥ 0.5): below it, no bound
        "calibrated_gain_bound_80": float(0.25 * (running[-1] - 0.5)) if running[-1] >= 0.5 else None,
    }


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
