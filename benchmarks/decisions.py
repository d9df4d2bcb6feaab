"""Decisions taken on a model's probabilities, read three ways, for the shift benchmarks: plain
(P ≥ t), conservative (the posterior's one-sided 95 % lower bound ≥ t), and shift-aware (the
conservative decisions, abstaining where the set reads as shifted: `unirank.metrics.shift`).
Per threshold: how many decisions are taken and their precision, with a 95 % interval resampling
groups (queries or prompts); a precision more than 0.05 below t is a promise broken."""

from __future__ import annotations

import numpy as np

THRESHOLDS = (0.5, 0.7)


def item_decisions(model, logits, features, states, relevant, groups) -> dict:
    """Items (a reranker's candidates): decide "relevant" at each threshold; the lower bound is
    `unirank score`'s `probability_lower`."""
    from unirank.fitting.links import probability
    from unirank.model.posterior import item_uncertainty

    logits = np.asarray(logits, np.float64)
    lower = item_uncertainty(model.posterior, logits, features)["probability_lower"]
    return _decisions(model, probability(logits), lower, np.asarray(relevant, float), np.asarray(groups), states)


def pair_decisions(model, r_a, r_b, f_a, f_b, states, p, prompts) -> dict:
    """Pairs (a reward model's comparisons, both orders): decide "this side is preferred" at each
    threshold; the lower bound reads the margin less 1.645 of its posterior standard error."""
    from unirank.fitting.links import pairwise_reading
    from unirank.model.posterior import Z_ONE_SIDED_95

    link = model.pairwise_link
    prob = pairwise_reading(r_a, r_b, link)
    _, se = model.posterior.pair_probability(r_a, r_b, f_a, f_b, link)
    lower = pairwise_reading(r_a - Z_ONE_SIDED_95 * se, r_b, link)
    upper = pairwise_reading(r_a + Z_ONE_SIDED_95 * se, r_b, link)
    sided = np.concatenate([prob, 1 - prob])
    sided_lower = np.concatenate([lower, 1 - upper])
    truth = np.concatenate([p > 0.5, p < 0.5]).astype(float)
    return _decisions(model, sided, sided_lower, truth, np.concatenate([prompts, prompts]), states)


def _decisions(model, prob, lower, truth, groups, states) -> dict:
    from unirank.metrics.bootstrap import grouped_interval
    from unirank.metrics.shift import novelty_percentiles, set_shift_test

    def taken(kept: np.ndarray, t: float) -> dict:
        entry = {"decisions": int(kept.sum())}
        if kept.any():
            hits = truth[kept]
            entry["precision"] = float(hits.mean())
            entry["interval"] = grouped_interval(lambda rows: float(hits[rows].mean()), groups[kept])[0]
            entry["precision_minus_threshold"] = entry["precision"] - t
        return entry

    test = set_shift_test(novelty_percentiles(model.novelty, states))
    out = {"set_test": test}
    for t in THRESHOLDS:
        out[f"plain@{t}"], out[f"conservative@{t}"] = taken(prob >= t, t), taken(lower >= t, t)
        shifted = {"decisions": 0, "abstained": True}
        out[f"shift-aware@{t}"] = shifted if test["shifted"] else out[f"conservative@{t}"]
    return out
