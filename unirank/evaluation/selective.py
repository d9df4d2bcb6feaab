"""Selective prediction: decide only where the model is sure, abstain on the rest.

A decision is "p > 0.5" (a preferred, relevant, correct); its confidence is |p − 0.5|, the only
signal a calibrated probability carries about its own reliability. Sorting decisions by confidence
and keeping the top fraction c gives accuracy(c), the risk-coverage curve (risk = 1 − accuracy);
its area (AURC, lower is better) summarises it, and accuracy at 80 % coverage is what a user who
abstains on the least certain fifth gets. For a calibrated p the expected accuracy of a kept
decision is max(p, 1 − p), so abstaining should raise accuracy.
"""

from __future__ import annotations

import numpy as np


def selective_report(prob, label, coverages=(1.0, 0.9, 0.8, 0.5)) -> dict:
    """accuracy at each coverage, AURC over all coverages, and the number of decisions; label > 0.5
    is the truth (ties at exactly 0.5 are the caller's to drop)."""
    p = np.asarray(prob, dtype=np.float64)
    truth = np.asarray(label, dtype=np.float64) > 0.5
    n = p.size
    if n == 0:
        return {"n": 0, "aurc": float("nan"), "accuracy_at": {}}
    correct = ((p > 0.5) == truth).astype(np.float64)
    order = np.argsort(-np.abs(p - 0.5), kind="stable")
    running = np.cumsum(correct[order]) / np.arange(1, n + 1)  # accuracy of the k most confident
    accuracy_at = {f"{c:.0%}": float(running[max(1, int(round(c * n))) - 1]) for c in coverages}
    return {"n": int(n), "aurc": float(np.mean(1.0 - running)), "accuracy_at": accuracy_at}
