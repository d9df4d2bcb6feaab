"""The chat domain: reward models of (prompt, response), trained on preference pairs."""

from __future__ import annotations

from unirank.domains import Domain, EvaluationOptions
from unirank.domains.chat.adapter import ChatAdapter


class Chat(Domain):
    name = "chat"
    adapter = ChatAdapter
    reliability_title = "P(a ≻ b) vs observed preference"

    def evaluate(self, models: dict, tables, options: EvaluationOptions) -> dict:
        from unirank.domains.chat.evaluation import evaluate_preferences

        return evaluate_preferences(models, tables, thresholds=options.thresholds)

    def summary_lines(self, report: dict) -> list[str]:
        from unirank.domains.chat.evaluation import summary_lines

        return summary_lines(report)


DOMAIN = Chat()
