"""Calibration: do predicted probabilities match observed frequencies?

ECE uses 15 equal-width bins: Σ_b (n_b / N) · |mean prob_b − mean label_b| (for 0/1 labels,
torchmetrics' L1 binary_calibration_error; soft labels, a fraction of annotators, use the same
formula). `calibration_error` is the one implementation every figure uses. Brier = mean (p − y)²;
NLL = −mean[y log p + (1−y) log(1−p)].
"""

from __future__ import annotations

import numpy as np

from unirank.fitting.links import pairwise_reading

EPS = 1e-7


def _as_probabilities(prob, label) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(prob, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} probabilities but {y.size} labels")
    for name, values in (("probability", p), ("label", y)):
        bad = np.flatnonzero(~((values >= 0) & (values <= 1)))
        if bad.size:
            raise ValueError(f"{name} at position {bad[0]} is {values[bad[0]]}, not in [0, 1]")
    return p, y


def calibration_error(prob, label, n_bins: int = 15) -> float:
    """Expected calibration error over n_bins equal-width bins of the probabilities (0 for no rows)."""
    prob, label = np.asarray(prob, dtype=np.float64), np.asarray(label, dtype=np.float64)
    index = np.minimum((prob * n_bins).astype(int), n_bins - 1)
    gap = np.abs(np.bincount(index, prob, n_bins) - np.bincount(index, label, n_bins))
    return float(gap.sum() / max(len(prob), 1))


def reliability_table(prob, label, n_bins: int = 15) -> list[dict]:
    """Per equal-width bin: its range, count, mean probability and mean label (empty bins kept)."""
    p, y = _as_probabilities(prob, label)
    index = np.minimum((p * n_bins).astype(int), n_bins - 1)
    rows = []
    for b in range(n_bins):
        members = index == b
        count = int(members.sum())
        rows.append(
            {
                "low": b / n_bins,
                "high": (b + 1) / n_bins,
                "count": count,
                "mean_prob": float(p[members].mean()) if count else None,
                "mean_label": float(y[members].mean()) if count else None,
            }
        )
    return rows


def calibration_metrics(prob, label, n_bins: int = 15) -> dict:
    """ece, brier, nll and the reliability table of probabilities against (possibly soft) labels."""
    p, y = _as_probabilities(prob, label)
    if p.size == 0:
        raise ValueError("no probabilities to evaluate")
    clipped = np.clip(p, EPS, 1 - EPS)
    nll = -np.mean(y * np.log(clipped) + (1 - y) * np.log(1 - clipped))
    return {
        "ece": calibration_error(p, y, n_bins),
        "brier": float(np.mean((p - y) ** 2)),
        "nll": float(nll),
        "n": int(p.size),
        "reliability": reliability_table(p, y, n_bins),
    }


def pairwise_probability(score_a, score_b, link: str = "bradley-terry") -> np.ndarray:
    """P(a ≻ b) implied by two logits.

    bradley-terry: σ(r_a − r_b), the reading of a pairwise-trained model.
    thurstone: Φ(Φ⁻¹(σ(r_a)) − Φ⁻¹(σ(r_b))), the reading of a model trained on Thurstone targets
    σ(r) = Φ(latent): the latents are recovered and compared on their own scale.
    """
    return pairwise_reading(score_a, score_b, link)


def both_orders(prob, observed_p) -> tuple[np.ndarray, np.ndarray]:
    """Each comparison listed both ways: (P(a ≻ b), p) and (1 − P(a ≻ b), 1 − p).

    Which side a data set lists first is arbitrary (HH-RLHF always lists the chosen response
    first, so every label is 1 and an ECE on one order measures only how sure the model is);
    calibration of a preference probability has to hold whichever side comes first."""
    prob, observed_p = np.asarray(prob, dtype=np.float64), np.asarray(observed_p, dtype=np.float64)
    return np.concatenate([prob, 1 - prob]), np.concatenate([observed_p, 1 - observed_p])


def pairwise_calibration(score_a, score_b, observed_p, link: str = "bradley-terry", n_bins: int = 15) -> dict:
    """Calibration of predicted P(a ≻ b) against the observed preference (1, 0, 0.5 or a fraction),
    over both orders of every comparison (see both_orders; Brier is the same either way)."""
    return calibration_metrics(*both_orders(pairwise_probability(score_a, score_b, link), observed_p), n_bins)
