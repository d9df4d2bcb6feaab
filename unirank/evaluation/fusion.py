"""Fusing a reranker with its first stage: rank by r + γ·s (r the reranker's logit, s the first
stage's score), γ chosen on validation lists to maximise mean NDCG@10. γ = 0 keeps the reranker
alone, so on validation the fused ranking is never worse than the reranker, and a γ large enough
reproduces the first stage's order."""

from __future__ import annotations

import numpy as np

GRID = np.concatenate([[0.0], np.logspace(-1, 3, 41)])


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, group: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of every group (graded gains, log2 discount, ties broken by row order); groups
    without a positive gain are left out. Returns one value per kept group."""
    values = []
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        gain = gains[rows]
        if not (gain > 0).any():
            continue
        order = np.argsort(-scores[rows], kind="stable")[:k]
        discount = 1 / np.log2(np.arange(2, k + 2))
        dcg = float((gain[order] * discount[: len(order)]).sum())
        ideal = np.sort(gain)[::-1][:k]
        values.append(dcg / float((ideal * discount[: len(ideal)]).sum()))
    return np.array(values)


def fit_fusion_weight(scores, first_stage, gains, group, k: int = 10) -> dict:
    """{"first_stage_weight": γ, "ndcg@10": {"reranker": ..., "fused": ...}, "queries": n} on these lists."""
    scores, first_stage = np.asarray(scores, np.float64), np.asarray(first_stage, np.float64)
    gains, group = np.asarray(gains, np.float64), np.asarray(group)
    means = [float(ndcg_at_k(scores + w * first_stage, gains, group, k).mean()) for w in GRID]
    best = int(np.argmax(means))
    return {
        "first_stage_weight": float(GRID[best]),
        f"ndcg@{k}": {"reranker": means[0], "fused": means[best]},
        "queries": int(len(ndcg_at_k(scores, gains, group, k))),
    }
