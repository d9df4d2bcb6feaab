"""The process domain: process reward models that score every step of a solution."""

from __future__ import annotations

from unirank.domains import Domain, EvaluationOptions
from unirank.domains.process.adapter import ProcessAdapter


class Process(Domain):
    name = "process"
    adapter = ProcessAdapter
    reliability_title = "σ(step score) vs step correctness"

    def evaluate(self, models: dict, tables, options: EvaluationOptions) -> dict:
        from unirank.domains.process.evaluation import evaluate_process

        return evaluate_process(models, tables)

    def summary_lines(self, report: dict) -> list[str]:
        from unirank.domains.process.evaluation import summary_lines

        return summary_lines(report)


DOMAIN = Process()
