"""Step 3 of mining: choose hard negatives from a query's ranked hits.

A judged positive is never a negative. Unjudged documents that score almost as high as the
positives are likely false negatives (relevant but unjudged), so, after NV-Retriever's
"TopK-PercPos", a hit is dropped when its score ≥ relative_margin × the lowest positive's score,
and/or when it is within absolute_margin of it. The top `range_min` ranks can be skipped too.
"""

from __future__ import annotations

import numpy as np


def select_negatives(
    hit_ids: list[str],
    hit_scores: np.ndarray,
    positives: dict[str, int],
    positive_scores: np.ndarray,
    *,
    count: int,
    relative_margin: float | None = 0.95,
    absolute_margin: float | None = None,
    range_min: int = 0,
) -> list[tuple[str, float, int]]:
    """Up to `count` negatives as (doc id, score, rank), best-scoring first.

    hit_ids/hit_scores: the ranked hits of one query; positives: judged doc id → grade (grade > 0
    is relevant); positive_scores: the query's similarity to each relevant document.
    """
    relevant = {doc for doc, grade in positives.items() if grade > 0}
    ceiling = np.inf
    if len(positive_scores):
        lowest = float(np.min(positive_scores))
        if relative_margin is not None:
            ceiling = min(ceiling, relative_margin * lowest)
        if absolute_margin is not None:
            ceiling = min(ceiling, lowest - absolute_margin)
    chosen = []
    for rank, (doc, score) in enumerate(zip(hit_ids, hit_scores)):
        if len(chosen) == count:
            break
        if rank < range_min or doc in relevant or score >= ceiling:
            continue
        chosen.append((doc, float(score), rank))
    return chosen
