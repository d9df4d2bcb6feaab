"""Fusing a reranker with its first stage: rank by r + γ·s (r the reranker's logit, s the first
stage's score), γ chosen on validation lists to maximise mean NDCG@10. γ = 0 keeps the reranker
alone, so on validation the fused ranking is never worse than the reranker, and a γ large enough
reproduces the first stage's order."""

from __future__ import annotations

import numpy as np

GRID = np.concatenate([[0.0], np.logspace(-1, 3, 41)])


def ndcg_at_k(scores: np.ndarray, gains: np.ndarray, group: np.ndarray, k: int = 10) -> np.ndarray:
    """NDCG@k of every group with a positive gain (graded gains), by trec_eval's code through
    ir-measures (the measure `unirank.metrics.retrieval` reports); one value per kept group, in the
    order of the groups' first rows."""
    import ir_measures
    from ir_measures import nDCG

    run: dict[str, dict[str, float]] = {}
    qrels: dict[str, dict[str, int]] = {}
    for row, (key, score, gain) in enumerate(zip(map(str, group), scores, gains)):
        run.setdefault(key, {})[str(row)] = float(score)
        qrels.setdefault(key, {})[str(row)] = int(round(gain))
    kept = {key: docs for key, docs in run.items() if any(g > 0 for g in qrels[key].values())}
    values = {metric.query_id: metric.value for metric in ir_measures.iter_calc([nDCG @ k], qrels, kept)}
    return np.array([values[key] for key in kept], dtype=np.float64)


def fit_fusion_weight(scores, first_stage, gains, group, k: int = 10) -> dict:
    """{"first_stage_weight": γ, "ndcg@10": {"reranker": ..., "fused": ...}, "queries": n} on these lists."""
    scores, first_stage = np.asarray(scores, np.float64), np.asarray(first_stage, np.float64)
    gains, group = np.asarray(gains, np.float64), np.asarray(group)
    per_query = [ndcg_at_k(scores + w * first_stage, gains, group, k) for w in GRID]
    means = [float(values.mean()) for values in per_query]
    best = int(np.argmax(means))
    return {
        "first_stage_weight": float(GRID[best]),
        f"ndcg@{k}": {"reranker": means[0], "fused": means[best]},
        "queries": len(per_query[0]),
    }


def cross_fitted_fusion(
    scores, first_stage, gains, group, folds: int = 5, seed: int = 0, k: int = 10, current: float | None = None
) -> dict:
    """γ fitted on all the lists (`fit_fusion_weight`), and what it is worth on queries its fit did
    not see: the queries dealt into k folds, each fold ranked with the γ chosen on the others.
    Adds {"held_out": {"first stage", "reranker", "fused"}: mean NDCG@k, "folds"}; with `current`
    (the γ the model has), also "versus_current": the out-of-fold NDCG@k of the refit minus that of
    the current γ, paired over queries with its 95 % interval."""
    scores, first_stage = np.asarray(scores, np.float64), np.asarray(first_stage, np.float64)
    gains, group = np.asarray(gains, np.float64), np.asarray(group)
    record = fit_fusion_weight(scores, first_stage, gains, group, k)
    from unirank.metrics.cross_fit import deal_folds

    fold, folds = deal_folds(group, folds, seed)
    fused = np.empty_like(scores)
    for f in range(folds):
        rest = fold != f
        weight = fit_fusion_weight(scores[rest], first_stage[rest], gains[rest], group[rest], k)["first_stage_weight"]
        fused[~rest] = scores[~rest] + weight * first_stage[~rest]
    record["held_out"] = {
        name: float(ndcg_at_k(ranking, gains, group, k).mean())
        for name, ranking in (("first stage", first_stage), ("reranker", scores), ("fused", fused))
    }
    record["folds"] = folds
    if current is not None:
        from unirank.metrics.bootstrap import paired_difference

        kept = ndcg_at_k(scores + current * first_stage, gains, group, k)
        refit = ndcg_at_k(fused, gains, group, k)
        queries = range(len(refit))
        record["versus_current"] = {"current_weight": current} | paired_difference(
            dict(zip(queries, refit)), dict(zip(queries, kept))
        )
    return record
