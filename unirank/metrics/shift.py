"""How unlike the training data the evaluated inputs are, read with the model's novelty reference
(`unirank.model.novelty`), and how the model fares on the unfamiliar ones.

An input is unfamiliar when its novelty percentile is above 0.95: farther from the training inputs
of other contexts than 95 % of the training inputs are. On data drawn like the training data about
5 % of inputs are; a much larger share says the evaluation set (or the traffic it stands for) is
not what the model was trained and calibrated on, and its figures may not carry.
"""

from __future__ import annotations

import numpy as np

from unirank.metrics.bootstrap import grouped_interval

UNFAMILIAR_ABOVE = 0.95


def novelty_percentiles(reference, states: np.ndarray) -> np.ndarray:
    """The novelty percentile of each input's pooled state."""
    return reference.percentile(reference.novelty(states))


def shift_report(percentiles: np.ndarray) -> dict:
    """Median percentile and the share of unfamiliar inputs (expected ≈ 1 − 0.95 in distribution)."""
    percentiles = np.asarray(percentiles, dtype=np.float64)
    return {
        "inputs": int(percentiles.size),
        "median_percentile": float(np.median(percentiles)) if percentiles.size else float("nan"),
        "unfamiliar_share": float((percentiles > UNFAMILIAR_ABOVE).mean()) if percentiles.size else float("nan"),
        "unfamiliar_above": UNFAMILIAR_ABOVE,
        "expected_in_distribution": round(1 - UNFAMILIAR_ABOVE, 4),
    }


def accuracy_by_familiarity(unfamiliar: np.ndarray, correct: np.ndarray, group: np.ndarray) -> dict:
    """Accuracy of the decisions on unfamiliar and on familiar cases, each with its count and a 95 %
    bootstrap interval over groups (None where a side is empty)."""
    out = {}
    for side, rows in (("unfamiliar", unfamiliar), ("familiar", ~unfamiliar)):
        part, owner = correct[rows], group[rows]
        interval = grouped_interval(lambda r: float(part[r].mean()), owner)[0] if part.size else None
        out[side] = {
            "n": int(part.size),
            "accuracy": float(part.mean()) if part.size else None,
            "interval": interval,
        }
    return out
