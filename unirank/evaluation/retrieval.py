"""Retrieval metrics computed by trec_eval's own code (pytrec_eval, through ir-measures)."""

from __future__ import annotations

import math


def retrieval_metrics(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]], k: int = 10) -> dict:
    """NDCG@k (graded gains), MRR@k, Recall@100 and MAP, averaged over the run's queries.

    run: {query id: {doc id: score}}; qrels: {query id: {doc id: grade}}. A run naming a query that
    has no judgments, or a score that is NaN or infinite, raises ValueError naming it.
    """
    import ir_measures
    from ir_measures import AP, RR, R, nDCG

    for qid, docs in run.items():
        if qid not in qrels:
            raise ValueError(f"the run names query {qid!r}, which has no relevance judgments")
        for doc, score in docs.items():
            if not math.isfinite(score):
                raise ValueError(f"query {qid!r}, document {doc!r}: score {score} is not a finite number")
    measures = {f"ndcg@{k}": nDCG @ k, f"mrr@{k}": RR @ k, "recall@100": R @ 100, "map": AP}
    judged = {q: qrels[q] for q in run}
    values = ir_measures.calc_aggregate(list(measures.values()), judged, run)
    return {name: float(values[measure]) for name, measure in measures.items()}
