"""Evaluate one trained model in a fresh process (a benchmark contender), writing a report folder.

    python -m benchmarks.score_child --model DIR --kind unirank|plain|plain-no-segments --name NAME
        (--retrieval TEST_TABLES_DIR | --preferences FILE --format F) --out DIR [--device cpu|cuda]

unirank: an export folder (its adapter and calibration from unirank.json); plain: a transformers /
CrossEncoder folder scored through unirank's retrieval or chat adapter, read as a pairwise model;
plain-no-segments: the same with token_type_ids left out (TRL's collator passes none, so its model
was trained with segment 0 throughout).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from unirank import domains
from unirank.adapters import ChatAdapter, RetrievalAdapter
from unirank.data.tables import read_tables
from unirank.domains.chat.evaluation import evaluate_preferences
from unirank.domains.chat.source import Preferences
from unirank.domains.retrieval.evaluation import evaluate_retrieval, list_qrels
from unirank.evaluation.report import write_report
from unirank.model import Model, Scorer, load_backbone


class WithoutSegments(Model):
    """Scores with token_type_ids left out."""

    def score_texts(self, contexts, candidates):
        encoded = [dataclasses.replace(e, token_type_ids=None) for e in self.scorer.encode(contexts, candidates)]
        return self.scorer.score_encoded(encoded, self.bf16)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--kind", choices=["unirank", "plain", "plain-no-segments"], default="unirank")
    parser.add_argument("--name", required=True)
    parser.add_argument("--retrieval")
    parser.add_argument("--preferences")
    parser.add_argument("--format", default="trl")
    parser.add_argument("--validation-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--out", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    args = parser.parse_args()
    if args.kind == "unirank":
        predictor = Model.from_pretrained(args.model, bf16=args.precision == "bf16")
    else:
        adapter = RetrievalAdapter(max_length=args.max_length) if args.retrieval else ChatAdapter(args.max_length)
        model, tokenizer = load_backbone(args.model)
        kind = WithoutSegments if args.kind == "plain-no-segments" else Model
        predictor = kind(Scorer(model, tokenizer, adapter).eval(), bf16=args.precision == "bf16")
    predictor.scorer.to(args.device)
    if args.retrieval:
        tables = read_tables(args.retrieval)
        report = evaluate_retrieval({args.name: predictor}, tables, list_qrels(tables, args.retrieval))
    else:
        data = Preferences(args.preferences, args.format, args.validation_fraction, args.test_fraction)
        report = evaluate_preferences({args.name: predictor}, data.load().split("test"))
    domain = domains.get("retrieval" if args.retrieval else "chat")
    print(write_report(report, args.out, domain), file=sys.stderr)
    json.dumps(report)  # the report must be plain JSON


if __name__ == "__main__":
    main()
