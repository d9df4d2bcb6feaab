"""A calibration's ECE on groups its fit did not see: the evidence's groups dealt into k folds,
each fold calibrated by σ(a·r + b) fitted on the others, so every probability scored is out of
sample; the interval resamples whole groups. The final calibration decides by it whether to fold
its fit in; `unirank recalibrate` reports it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unirank.fitting.links import pairwise_reading, probability
from unirank.fitting.platt import AffineCalibration, fit_platt
from unirank.metrics.bootstrap import grouped_interval
from unirank.metrics.calibration import both_orders, calibration_error


@dataclass(frozen=True)
class Evidence:
    """What a recalibration is fitted on: scores r of items (logits of the model as it is), their
    groups, and absolute labels (NaN = none) or comparisons (item indices, p, weight)."""

    scores: np.ndarray
    groups: np.ndarray
    label: np.ndarray | None = None
    comp_a: np.ndarray | None = None
    comp_b: np.ndarray | None = None
    p: np.ndarray | None = None
    weight: np.ndarray | None = None

    @property
    def labelled(self) -> bool:
        return self.label is not None and bool((~np.isnan(self.label)).any())

    def fit(self, items: np.ndarray, reading: str, with_bias: bool) -> AffineCalibration:
        """σ(a·r + b) fitted on the evidence whose items (labels) or both items (comparisons) are in `items`."""
        if self.labelled:
            label = np.where(np.isin(np.arange(len(self.scores)), items), self.label, np.nan)
            return fit_platt(self.scores, label=label, with_bias=with_bias)
        kept = np.isin(self.comp_a, items) & np.isin(self.comp_b, items)
        return fit_platt(
            self.scores, comp_a=self.comp_a[kept], comp_b=self.comp_b[kept], p=self.p[kept],
            weight=None if self.weight is None else self.weight[kept], reading=reading,
        )  # fmt: skip

    def readings(self, logits: np.ndarray, reading: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probabilities, observed outcomes, their groups) that an ECE reads: σ(r) against each
        label; or P(a ≻ b) against p, both orders of each comparison."""
        if self.labelled:
            known = ~np.isnan(self.label)
            return probability(logits[known]), self.label[known], self.groups[known]
        prob, observed = both_orders(pairwise_reading(logits[self.comp_a], logits[self.comp_b], reading), self.p)
        return prob, observed, np.concatenate([self.groups[self.comp_a]] * 2)


def deal_folds(group: np.ndarray, folds: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Each row's fold: the distinct groups shuffled (by seed) and dealt round-robin into
    min(folds, groups) folds, so a group's rows share a fold. Returns (fold per row, folds)."""
    groups = np.unique(group)
    folds = max(1, min(folds, len(groups)))
    fold_of_group = dict(zip(np.random.default_rng(seed).permutation(groups), np.arange(len(groups)) % folds))
    return np.array([fold_of_group[g] for g in group]), folds


def recalibrate_scores(evidence: Evidence, reading: str, with_bias: bool, folds: int = 5, seed: int = 0) -> dict:
    """The fit on all the evidence and the held-out ECE before and after (k-fold over groups).

    Returns {"a", "b", "evidence", "n", "groups", "before": {ece, interval}, "after": {...}}: before
    reads σ(r) as the model gives it; after, each fold calibrated by the fit on the other folds."""
    groups = np.unique(evidence.groups)
    if len(groups) < 2:
        raise ValueError(f"recalibration needs labels in at least 2 groups to hold some out; got {len(groups)}")
    fold, folds = deal_folds(evidence.groups, folds, seed)
    out_of_fold = np.array(evidence.scores, dtype=np.float64)
    for k in range(folds):
        fitted = evidence.fit(np.flatnonzero(fold != k), reading, with_bias)
        held = fold == k
        out_of_fold[held] = fitted.a * evidence.scores[held] + fitted.b
    final = evidence.fit(np.arange(len(evidence.scores)), reading, with_bias)

    def measure(logits: np.ndarray) -> dict:
        prob, observed, owner = evidence.readings(logits, reading)
        interval, n_groups = grouped_interval(lambda rows: calibration_error(prob[rows], observed[rows]), owner)
        return {"ece": round(calibration_error(prob, observed), 5), "ece_interval": interval, "n": len(prob)}

    return {
        "a": final.a, "b": final.b, "evidence": final.evidence, "n": final.n, "groups": len(groups),
        "folds": folds, "before": measure(evidence.scores), "after": measure(out_of_fold),
    }  # fmt: skip
