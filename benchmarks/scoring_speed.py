"""Scoring speed on the same (query, document) pairs and the same exported model, one tool per
fresh process: unirank (`Model.from_pretrained(folder).score_texts`, the forward pass `unirank score` /
`evaluate` run for a model without a novelty reference; one with a reference reads every token's
final state, so there the last layer runs in full) or sentence-transformers' `CrossEncoder.predict`
(batch 32), 128 tokens.

    python -m benchmarks.scoring_speed --tool unirank|crossencoder --model DIR --precision bf16|fp32
        [--pairs 1500] [--scifact DIR]

bf16 means each tool's own bfloat16 path: unirank's `bf16=True`, CrossEncoder loaded with
`model_kwargs={"torch_dtype": torch.bfloat16}`. The pairs: SciFact test queries with random
corpus documents (seed 0). The time covers tokenising and scoring all pairs, after one warm-up call
on 64 pairs; the scores are returned too, so the tools can be checked against each other.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from benchmarks.common import ROOT, peak_rss_mb

SCIFACT = ROOT.parent / "shared" / "data" / "scifact"
MAX_LENGTH, BATCH = 128, 32


def pairs(scifact: str, n: int) -> tuple[list[str], list[str]]:
    from unirank.domains.retrieval.readers import read_beir

    beir = read_beir(scifact, "test")
    rng = np.random.default_rng(0)
    queries, docs = [beir.queries[q] for q in sorted(beir.qrels)], list(beir.corpus.values())
    return [queries[i] for i in rng.integers(0, len(queries), n)], [docs[i] for i in rng.integers(0, len(docs), n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tool", choices=["unirank", "crossencoder"], required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--pairs", type=int, default=1500)
    parser.add_argument("--scifact", default=str(SCIFACT))
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    queries, docs = pairs(args.scifact, args.pairs)
    bf16 = args.precision == "bf16"
    if args.tool == "unirank":
        from unirank.model import Model

        predictor = Model.from_pretrained(args.model, bf16=bf16)
        predictor.scorer.chunk_size = BATCH

        def score(q, d):
            return predictor.score_texts(q, d)
    else:
        from sentence_transformers import CrossEncoder

        kwargs = {"model_kwargs": {"torch_dtype": torch.bfloat16}} if bf16 else {}
        model = CrossEncoder(args.model, max_length=MAX_LENGTH, device="cpu", **kwargs)

        def score(q, d):
            return model.predict(list(zip(q, d)), batch_size=BATCH, activation_fn=torch.nn.Identity())

    score(queries[:64], docs[:64])
    start = time.perf_counter()
    scores = np.asarray(score(queries, docs), dtype=np.float64)
    seconds = time.perf_counter() - start
    print(json.dumps({"tool": args.tool, "precision": args.precision, "pairs": len(queries), "seconds": seconds,
                      "sequences_per_s": len(queries) / seconds, "peak_rss_mb": peak_rss_mb(),
                      "scores": scores.round(5).tolist()}))  # fmt: skip


if __name__ == "__main__":
    main()
