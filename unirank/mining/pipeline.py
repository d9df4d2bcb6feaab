"""Mining end to end: BEIR folder → groups, items, comparisons (+ a summary).

encode (cached) → index → batched search → filter negatives → sample and label pairs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from unirank.atomic import atomic_path
from unirank.data.readers import assign_split, read_beir
from unirank.data.tables import Tables, tables_from_rows
from unirank.mining.encode import Encoder
from unirank.mining.filters import select_negatives
from unirank.mining.pairs import label_pairs
from unirank.mining.search import IndexKind, build_index, search


@dataclass
class MiningConfig:
    """How to mine. precision: bf16 (autocast, ~2x faster on CPU, embeddings within cosine 0.99998
    of fp32) or fp32; k: hits searched per query; negatives: hard negatives kept per query (≤ k);
    pairs_k: comparisons per candidate (random cycles); validation_fraction: share of queries,
    by a stable hash, set aside as the validation split; keep_ranking: keep the top-k as retrieved
    (positives in place, no filtering), as evaluation needs."""

    encoder: str = "minilm"
    precision: str = "bf16"
    k: int = 100
    negatives: int = 7
    relative_margin: float | None = 0.95
    absolute_margin: float | None = None
    range_min: int = 0
    pairs_k: int = 8
    all_positive_pairs: bool = True
    validation_fraction: float = 0.0
    keep_ranking: bool = False
    index: IndexKind = "auto"
    cache_dir: str | None = ".unirank-cache"
    seed: int = 0
    batch_size: int = 64
    show_progress_bar: bool = True


def mine_beir(directory: str | Path, split: str, config: MiningConfig) -> tuple[Tables, dict]:
    """Mine candidates and labelled comparisons for the judged queries of one BEIR split."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    beir = read_beir(directory, split)
    query_ids = sorted(beir.qrels)
    doc_ids = list(beir.corpus)
    doc_row = {doc: row for row, doc in enumerate(doc_ids)}
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    encoder = Encoder.load(config.encoder, precision=config.precision)
    cache = None if config.cache_dir is None else Path(config.cache_dir) / "embeddings"
    common = dict(batch_size=config.batch_size, cache_dir=cache, show_progress_bar=config.show_progress_bar)
    doc_vectors = encoder.encode([beir.corpus[d] for d in doc_ids], role="document", **common)
    query_vectors = encoder.encode([beir.queries[q] for q in query_ids], role="query", **common)
    timings["encode_s"] = time.perf_counter() - start

    start = time.perf_counter()
    index = build_index(doc_vectors, config.index)
    scores, rows = search(index, query_vectors, config.k)
    timings["search_s"] = time.perf_counter() - start

    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    groups, items, comparisons = [], [], []
    found, relevant_total = 0, 0
    for q, qid in enumerate(query_ids):
        judged = beir.qrels[qid]
        hit_ids = [doc_ids[r] for r in rows[q] if r >= 0]
        hit_scores = scores[q][rows[q] >= 0]
        relevant = [d for d, g in judged.items() if g > 0]
        found += len(set(relevant) & set(hit_ids))
        relevant_total += len(relevant)
        candidates = _candidates(config, judged, relevant, hit_ids, hit_scores, query_vectors[q], doc_vectors, doc_row)
        if not candidates:
            continue
        split_name = split if split != "train" else assign_split(qid, config.validation_fraction)
        groups.append({"group_id": qid, "context": beir.queries[qid], "category": None, "split": split_name})
        top_grade = max(max(judged.values()), 1)
        for doc, score, rank in candidates:
            grade = judged.get(doc, 0)
            items.append(
                {
                    "group_id": qid,
                    "item_id": doc,
                    "text": beir.corpus[doc],
                    "label": grade / top_grade,
                    "first_stage_score": score,
                    "first_stage_rank": rank,
                }
            )
        if not config.keep_ranking:
            grades = [judged.get(doc, 0) for doc, _, _ in candidates]
            for i, j, p in label_pairs(
                grades, k=config.pairs_k, all_positive_pairs=config.all_positive_pairs, seed=rng
            ):
                comparisons.append(
                    {
                        "group_id": qid,
                        "item_a": candidates[i][0],
                        "item_b": candidates[j][0],
                        "p": p,
                        "weight": 1.0,
                        "source": "qrels",
                    }
                )
    timings["select_s"] = time.perf_counter() - start
    tables = tables_from_rows(
        groups,
        items,
        comparisons,
        f"mined from {directory}",
        item_columns={"first_stage_score": pl.Float64, "first_stage_rank": pl.Int64},
    )
    summary = {
        "beir": str(directory),
        "split": split,
        "encoder": config.encoder,
        "precision": config.precision,
        "k": config.k,
        "queries": len(query_ids),
        "corpus": len(doc_ids),
        f"recall@{config.k}": found / max(relevant_total, 1),
        "index": {"kind": index.kind, **index.params},
        "items": tables.items.height,
        "comparisons": tables.comparisons.height,
        "timings_s": timings,
    }
    return tables, summary


def _candidates(config, judged, relevant, hit_ids, hit_scores, query_vector, doc_vectors, doc_row):
    """(doc id, first-stage score, rank) of one query's candidates: positives + hard negatives, or the ranking."""
    if config.keep_ranking:
        return [(doc, float(score), rank) for rank, (doc, score) in enumerate(zip(hit_ids, hit_scores))]
    rank_of = {doc: rank for rank, doc in enumerate(hit_ids)}
    positive_scores = np.array([float(doc_vectors[doc_row[d]] @ query_vector) for d in relevant])
    positives = [(d, s, rank_of.get(d, len(hit_ids))) for d, s in zip(relevant, positive_scores)]
    negatives = select_negatives(
        hit_ids,
        hit_scores,
        judged,
        positive_scores,
        count=config.negatives,
        relative_margin=config.relative_margin,
        absolute_margin=config.absolute_margin,
        range_min=config.range_min,
    )
    return positives + negatives


def write_mined(tables: Tables, summary: dict, out_dir: str | Path) -> None:
    """groups/items/comparisons.parquet and mining.json into out_dir, each written atomically."""
    tables.write(out_dir)
    with atomic_path(Path(out_dir) / "mining.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
