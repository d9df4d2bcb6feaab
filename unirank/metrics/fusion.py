"""Fusing a reranker with its first stage: rank by r + γ·s (r the reranker's logit, s the first
stage's score), γ chosen on validation lists to maximise mean NDCG@10. γ = 0 keeps the reranker
alone, so on validation the fused ranking is never worse than the reranker, and a γ large enough
reproduces the first stage's order."""

from __future__ import annotations

import numpy as np

GRID = np.concatenate([[0.0], np.logspace(-1, 3, 41)])


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, group: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of every group with a positive gain (graded gains), by trec_eval's code
    (`unirank.metrics.retrieval.retrieval_metrics`, ir-measures); one value per kept group, in
    the order of the groups' first rows."""
    from unirank.metrics.retrieval import retrieval_metrics

    keys = [str(g) for g in group]
    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for row, (key, score, gain) in enumerate(zip(keys, scores, gains)):
        run.setdefault(key, {})[str(row)] = float(score)
        qrels.setdefault(key, {})[str(row)] = int(round(gain))
    kept = {key: docs for key, docs in run.items() if any(g > 0 for g in qrels[key].values())}
    if not kept:
        return np.zeros(0)
    per_query = retrieval_metrics(kept, qrels, k=k, per_query=True, depth=k)["per_query"][f"ndcg@{k}"]
    return np.array([per_query[key] for key in kept])


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
