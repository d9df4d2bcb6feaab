"""Retrieval metrics computed by trec_eval's own code (pytrec_eval, through ir-measures)."""

from __future__ import annotations

import math


def retrieval_metrics(
    run: dict[str, dict[str, float]],
    qrels: dict[str, dict[str, int]],
    k: int = 10,
    per_query: bool = False,
    depth: int = 100,
) -> dict:
    """NDCG@k (graded gains), MRR@k, Recall@depth and MAP, averaged over the run's queries that have
    a relevant document (the others are left out and counted in "queries_without_relevant": their
    NDCG is undefined, not 0); per_query: also "per_query": {measure: {query id: value}}.

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
    measures = {f"ndcg@{k}": nDCG @ k, f"mrr@{k}": RR @ k, f"recall@{depth}": R @ depth, "map": AP}
    answerable = [q for q in run if any(grade > 0 for grade in qrels[q].values())]
    if not answerable:
        raise ValueError(f"none of the {len(run)} queries has a relevant document: NDCG and MRR are undefined")
    skipped = len(run) - len(answerable)
    judged = {q: qrels[q] for q in answerable}
    run = {q: run[q] for q in answerable}
    values = ir_measures.calc_aggregate(list(measures.values()), judged, run)
    result = {name: float(values[measure]) for name, measure in measures.items()}
    result["queries_without_relevant"] = skipped
    if per_query:
        names = {measure: name for name, measure in measures.items()}
        result["per_query"] = {name: {} for name in measures}
        for metric in ir_measures.iter_calc(list(measures.values()), judged, run):
            result["per_query"][names[metric.measure]][metric.query_id] = float(metric.value)
    return result
