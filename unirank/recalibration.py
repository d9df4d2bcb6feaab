"""Recalibration on a new domain: σ(a·r + b) refitted on a few of its labels, with the ECE before
and after measured on labels the fit did not see.

A model moved to another collection or another kind of prompt keeps its ranking far better than
its probabilities (the base rate shifts, the scale stretches). Refitting the affine map of the
logits on the new domain's labels (absolute labels; else comparisons, a temperature: docs/math.md)
and folding it into the head restores the probability without touching the order. Held-out ECE:
the labelled groups are split into k folds; each fold is calibrated by the fit on the other folds,
so every probability scored is out of sample; the interval resamples whole groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import special

from unirank.fitting.links import pairwise_reading
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
            return special.expit(logits[known]), self.label[known], self.groups[known]
        prob, observed = both_orders(pairwise_reading(logits[self.comp_a], logits[self.comp_b], reading), self.p)
        return prob, observed, np.concatenate([self.groups[self.comp_a]] * 2)


def recalibrate_scores(evidence: Evidence, reading: str, with_bias: bool, folds: int = 5, seed: int = 0) -> dict:
    """The fit on all the evidence and the held-out ECE before and after (k-fold over groups).

    Returns {"a", "b", "evidence", "n", "groups", "before": {ece, interval}, "after": {...}}: before
    reads σ(r) as the model gives it; after, each fold calibrated by the fit on the other folds."""
    groups = np.unique(evidence.groups)
    if len(groups) < 2:
        raise ValueError(f"recalibration needs labels in at least 2 groups to hold some out; got {len(groups)}")
    folds = min(folds, len(groups))
    fold_of_group = dict(zip(np.random.default_rng(seed).permutation(groups), np.arange(len(groups)) % folds))
    fold = np.array([fold_of_group[g] for g in evidence.groups])
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


def check_output(source: Path, out: Path) -> None:
    """Before any work: the recalibrated model goes to a new folder, never over `source` or over
    anything unirank did not write (`OutputError` naming the path)."""
    from unirank.atomic import OutputError, check_output_folder

    if Path(out).resolve() == Path(source).resolve():
        raise OutputError(f"{out}: the recalibrated model is a new export; give another folder than the model's")
    check_output_folder(out, "unirank.json", "unirank export", overwrite=False)


def write_recalibrated(model, out: Path, record: dict) -> Path:
    """A new export in `out` (never over the folder `model` was loaded from): σ(a·r + b) folded
    into the head (a yes/no export: into the LM head's "yes" row, b = 0), the head posterior's
    covariance scaled by a² (r' = a·r + b), and the recalibration recorded in unirank.json."""
    a, b = record["a"], record["b"]
    model.scorer.fold_affine(a, b)
    if model.posterior is not None:
        model.posterior.covariance = model.posterior.covariance * a**2
    calibration = dict(model.info["calibration"])
    calibration["recalibration"] = {"from": str(model.source), **record}
    calibration["probability"] += f"; recalibrated: sigmoid({a:.4g}·r + {b:.4g}) on {record['fitted_on']}"
    model.info = {**model.info, "calibration": calibration}
    return model.save_pretrained(out)
