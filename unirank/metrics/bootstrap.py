"""Bootstrap intervals over groups (queries, prompts): the unit that was sampled is the unit resampled.

For a statistic S of the groups' data, draw B resamples of the G groups with replacement, compute S
on each, and report the 2.5 % and 97.5 % quantiles (a 95 % percentile interval). Every metric a user
reads carries its sample size and this interval, so a difference inside it is not read as a result.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from unirank.metrics.calibration import calibration_error


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], n_groups: int, resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> list:
    """[low, high] of statistic(group indices) over `resamples` resamples of range(n_groups); a
    statistic that returns a vector gets one [low, high] per component, from the same resamples."""
    if n_groups == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_groups, n_groups)) for _ in range(resamples)], dtype=np.float64)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(values, [tail, 100 - tail], axis=0)
    if values.ndim == 1:
        return [float(low), float(high)]
    return [[float(a), float(b)] for a, b in zip(low, high)]


def mean_interval(per_group: np.ndarray, **kwargs) -> list[float]:
    """Interval of the mean of one value per group (NDCG@10 per query, say)."""
    per_group = np.asarray(per_group, dtype=np.float64)
    return bootstrap_interval(lambda idx: float(per_group[idx].mean()), len(per_group), **kwargs)


def grouped_interval(statistic: Callable[[np.ndarray], float], group: np.ndarray, **kwargs) -> tuple[list[float], int]:
    """Interval of statistic(row indices) when rows belong to groups and whole groups are resampled
    (ECE over the candidates of resampled queries, say). Returns (interval, number of groups)."""
    _, owner = np.unique(np.asarray(group), return_inverse=True)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(owner.max() + 2)) if len(owner) else np.zeros(1, int)
    members = [order[bounds[g] : bounds[g + 1]] for g in range(len(bounds) - 1)]

    def resampled(idx: np.ndarray) -> float:
        return statistic(np.concatenate([members[g] for g in idx]))

    return bootstrap_interval(resampled, len(members), **kwargs), len(members)


def paired_difference(per_group_a: dict, per_group_b: dict, **kwargs) -> dict:
    """Metric of system a minus system b, scored on the same groups, with a 95 % bootstrap interval
    that resamples the groups both were scored on (a paired test: each resample draws the same
    groups for both, so the spread between groups cancels out of the difference).

    per_group_*: {group: value} for a mean over groups (NDCG@10 per query), or {group: [sum, count]}
    for a pooled ratio (correct pairs and pairs per prompt: accuracy = Σ sum / Σ count).
    Returns {"difference", "interval", "n_groups"}; "n_groups" counts the groups both have.
    """
    shared = sorted(set(per_group_a) & set(per_group_b), key=str)

    def parts(per_group: dict) -> tuple[np.ndarray, np.ndarray]:
        values = [per_group[g] for g in shared]
        pooled = [v if isinstance(v, (list, tuple)) else (v, 1.0) for v in values]
        return np.array([v[0] for v in pooled], dtype=np.float64), np.array([v[1] for v in pooled], dtype=np.float64)

    (sum_a, count_a), (sum_b, count_b) = parts(per_group_a), parts(per_group_b)
    if not np.array_equal(count_a, count_b):
        raise ValueError("paired_difference: the two systems were scored on different units within a group")

    def difference(idx: np.ndarray) -> float:
        return float((sum_a[idx].sum() - sum_b[idx].sum()) / max(count_a[idx].sum(), 1e-12))

    every = np.arange(len(shared))
    return {
        "difference": difference(every) if len(shared) else float("nan"),
        "interval": bootstrap_interval(difference, len(shared), **kwargs),
        "n_groups": len(shared),
    }


def calibrated_ece_reference(
    prob: np.ndarray,
    observed_ece: float,
    trials: int | np.ndarray = 1,
    pairwise: bool = False,
    resamples: int = 1000,
    seed: int = 0,
) -> dict:
    """What the ECE would read on this sample if the model were perfectly calibrated: labels drawn
    as the model's own probabilities say (each the share of `trials` Bernoulli(p) draws: the
    judgments behind each label, 1 for one, a comparison's weight for PandaLM's three annotators;
    pairwise: p is P(a ≻ b) and the ECE is read over both orders), the ECE of each draw, and the
    share of draws at least as large as the observed one (a p-value for "calibrated"). ECE is biased
    upward on small samples, so an observed ECE inside this range cannot be told from perfect
    calibration, and a goal below it cannot be measured here."""
    prob = np.asarray(prob, dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        label = rng.binomial(trials, prob) / trials
        draws.append(
            calibration_error(np.r_[prob, 1 - prob], np.r_[label, 1 - label])
            if pairwise
            else calibration_error(prob, label)
        )
    draws = np.asarray(draws)
    return {
        "mean": float(draws.mean()),
        "interval": np.percentile(draws, [2.5, 97.5]).tolist(),
        "p_value": float((draws >= observed_ece).mean()),
        "judgments_per_label": float(np.median(trials)),
    }
