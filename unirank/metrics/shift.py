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

SHIFTED_SHARE = 0.20
"""A set of inputs is read as shifted when at least this share is unfamiliar (and the excess over
the expected 5 % is significant): chosen between the in-domain and the shifted sets' shares that
benchmarks/ood.py read; what later sets read is in docs/results.md (the shift sections)."""

SHIFT_P_VALUE = 1e-3
"""The one-sided binomial p-value below which the unfamiliar share's excess counts as significant."""


def novelty_percentiles(reference, states: np.ndarray) -> np.ndarray:
    """The novelty percentile of each input's pooled state."""
    return reference.percentile(reference.novelty(states))


def set_shift_test(percentiles) -> dict:
    """Whether a set of inputs, taken together, is unlike the training data. Under no shift the count
    of unfamiliar inputs is Binomial(n, 0.05); the set is `shifted` when its share is at least
    SHIFTED_SHARE and P(X ≥ count) < SHIFT_P_VALUE. One input's novelty is a weak signal (a shift in
    what is asked need not change how the text looks); the share over a set is a strong one.
    A shifted set's probabilities are not the ones validation measured: conservative decisions
    abstain there until the model is recalibrated on that domain (`unirank recalibrate`)."""
    from scipy import stats

    percentiles = np.asarray(percentiles, dtype=np.float64)
    n, expected = int(percentiles.size), round(1 - UNFAMILIAR_ABOVE, 4)
    count = int((percentiles > UNFAMILIAR_ABOVE).sum())
    p_value = float(stats.binom.sf(count - 1, n, expected)) if n else 1.0
    share = count / n if n else float("nan")
    return {
        "inputs": n,
        "unfamiliar": count,
        "share": share,
        "expected": expected,
        "p_value": p_value,
        "shifted": bool(n and share >= SHIFTED_SHARE and p_value < SHIFT_P_VALUE),
    }


def shift_sentence(test: dict) -> str:
    """What a shifted set means for the user, in one sentence."""
    return (
        f"{test['unfamiliar']} of {test['inputs']} inputs ({test['share']:.0%}) are unlike the training data "
        f"({test['expected']:.0%} expected; p = {test['p_value']:.1e}): the probabilities were not validated on data "
        "like these, so conservative decisions abstain; recalibrate on ~100 labels of this domain (unirank "
        "recalibrate) to decide here"
    )


def withhold_when_shifted(scored: list[dict]) -> dict | None:
    """Rows of `Model.score` read as one set: where it is shifted, each row's conservative bound
    (`probability_lower`) is withheld (None), so nothing acts on it. Returns the test (None where
    the model has no novelty reference)."""
    if not scored or "novelty_percentile" not in scored[0]:
        return None
    test = set_shift_test([row["novelty_percentile"] for row in scored])
    if test["shifted"]:
        for row in scored:
            if "probability_lower" in row:
                row["probability_lower"] = None
    return test


def shift_report(percentiles: np.ndarray) -> dict:
    """Median percentile, the share of unfamiliar inputs (expected ≈ 1 − 0.95 in distribution) and
    whether the set, taken together, is shifted (`set_shift_test`)."""
    percentiles = np.asarray(percentiles, dtype=np.float64)
    return {
        "inputs": int(percentiles.size),
        "median_percentile": float(np.median(percentiles)) if percentiles.size else float("nan"),
        "unfamiliar_share": float((percentiles > UNFAMILIAR_ABOVE).mean()) if percentiles.size else float("nan"),
        "unfamiliar_above": UNFAMILIAR_ABOVE,
        "expected_in_distribution": round(1 - UNFAMILIAR_ABOVE, 4),
        "set_test": set_shift_test(percentiles),
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
