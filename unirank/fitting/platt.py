"""The final calibration: an affine map of the logits, σ(a·r + b), fitted on held-out lists.

Fitted by maximum likelihood on the validation split at the depth the model is scored on:
    absolute labels y (where the data has them):  max Σ [y log σ(a r + b) + (1 − y) log σ(−(a r + b))]
    else comparisons (a ≻ b with probability p, weight w), read as the exported model is read, with
    b = 0 (a temperature: b cancels in the first reading and is barely identified in the second):
        bradley-terry:  P(a ≻ b) = σ(a (r_a − r_b))
        thurstone:      P(a ≻ b) = Φ(Φ⁻¹(σ(a r_a)) − Φ⁻¹(σ(a r_b)))
Because a·r + b is still one linear head, the map is folded into the head's weight and bias and
every export stays a plain model (see `unirank.model.scorer.fold_affine`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import optimize, special

from unirank.fitting.links import pairwise_reading

EPS = 1e-7
SLOPE_BOUNDS = (1e-3, 100.0)
"""The range searched for the slope a of σ(a·r + b): a at its floor means the scores carry no signal."""


@dataclass(frozen=True)
class AffineCalibration:
    """σ(a·r + b); `evidence`: "labels" or "comparisons"; n: how many of them it was fitted on."""

    a: float
    b: float
    evidence: str
    n: int


def fit_platt(
    scores: np.ndarray,
    *,
    label: np.ndarray | None = None,
    comp_a: np.ndarray | None = None,
    comp_b: np.ndarray | None = None,
    p: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    reading: Literal["bradley-terry", "thurstone"] = "bradley-terry",
    with_bias: bool = True,
) -> AffineCalibration:
    """Fit (a ≥ 0, b) to the labels (NaN = unlabelled) where any are given, else to the comparisons
    (indices into `scores`). with_bias=False fixes b = 0 (a head without a bias term)."""
    scores = np.asarray(scores, dtype=np.float64)
    known = np.zeros(len(scores), bool) if label is None else ~np.isnan(np.asarray(label, dtype=np.float64))
    if known.any():
        r, y = scores[known], np.asarray(label, dtype=np.float64)[known]

        def nll(params):
            z = params[0] * r + params[1]
            return -float(np.sum(y * special.log_expit(z) + (1 - y) * special.log_expit(-z)))

        evidence, n = "labels", int(known.sum())
    elif comp_a is not None and len(comp_a):
        ra, rb = scores[np.asarray(comp_a)], scores[np.asarray(comp_b)]
        p = np.asarray(p, dtype=np.float64)
        w = np.ones_like(p) if weight is None else np.asarray(weight, dtype=np.float64)

        def nll(params):
            prob = np.clip(
                pairwise_reading(params[0] * ra + params[1], params[0] * rb + params[1], reading), EPS, 1 - EPS
            )
            return -float(np.sum(w * (p * np.log(prob) + (1 - p) * np.log(1 - prob))))

        evidence, n = "comparisons", len(p)
        with_bias = False  # comparisons fix a temperature; the bias is weakly identified from them
    else:
        raise ValueError("the final calibration needs labelled items or comparisons in the validation split")
    bounds = [SLOPE_BOUNDS, (-50.0, 50.0) if with_bias else (0.0, 0.0)]
    result = optimize.minimize(nll, np.array([1.0, 0.0]), method="L-BFGS-B", bounds=bounds)
    return AffineCalibration(a=float(result.x[0]), b=float(result.x[1]), evidence=evidence, n=n)
