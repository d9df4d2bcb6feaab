"""The retrieval domain: rerankers of (query, document), trained on mined BEIR lists."""

from __future__ import annotations

from unirank.domains import Domain, EvaluationOptions
from unirank.domains.retrieval.adapter import RetrievalAdapter


class Retrieval(Domain):
    name = "retrieval"
    adapter = RetrievalAdapter
    reliability_title = "σ(score) vs relevance"

    def evaluate(self, models: dict, tables, options: EvaluationOptions) -> dict:
        """Each query's candidates reranked, scored against `options.qrels`, else the qrels.tsv of
        the folder the tables came from, else (with a warning) the items' own labels."""
        from unirank.domains.retrieval.evaluation import evaluate_retrieval, list_qrels

        qrels = options.qrels if options.qrels is not None else list_qrels(tables, options.folder)
        return evaluate_retrieval(models, tables, qrels, thresholds=options.thresholds)

    def summary_lines(self, report: dict) -> list[str]:
        from unirank.domains.retrieval.evaluation import summary_lines

        return summary_lines(report)


DOMAIN = Retrieval()
