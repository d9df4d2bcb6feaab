"""Mining end to end: BEIR folder → groups, items, comparisons (+ a summary).

encode (cached) → index → batched search → filter negatives → sample and label pairs.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from unirank.atomic import atomic_path, check_output_folder
from unirank.data.readers import assign_split
from unirank.data.tables import TableError, Tables, tables_from_rows
from unirank.domains.retrieval.readers import read_beir, read_qrels, write_qrels
from unirank.mining.encode import Encoder
from unirank.mining.filters import select_negatives
from unirank.mining.pairs import label_pairs
from unirank.mining.search import IndexKind, build_index, search
from unirank.model.precision import encoding_precision


@dataclass
class MiningConfig:
    """How to mine: the bi-encoder and index that retrieve, and the candidates and comparisons kept.
    Validation queries always get the whole top k.

    Args:
        encoder: sentence-transformers model name or path (the bi-encoder; "minilm" is the bundled all-MiniLM-L6-v2)
        precision: encoding precision; bf16 autocast is ~2x faster where the hardware has bf16
            (embeddings within cosine 0.99998 of fp32) and ~3x slower where it is emulated; "auto":
            bf16 where it is native, else fp32 (`unirank.model.precision.encoding_precision`)
        k: hits searched per query
        negatives: hard negatives kept per query (at most k)
        relative_margin: drop hits scoring at least this times the lowest positive's score (TopK-PercPos)
        absolute_margin: drop hits scoring at least the lowest positive's score minus this
        range_min: skip this many top ranks
        pairs_k: comparisons per candidate (random cycles)
        all_positive_pairs: also compare every positive with every lower-graded candidate of its query
        validation_fraction: share of queries, by a stable hash, set aside as the validation split
        keep_ranking: keep the top k as retrieved (positives in place, no filtering, no pairs), as evaluation needs
        candidates: per train query, the judged positives + `negatives` filtered hard negatives
            ("hard_negatives"), or the judged positives + every one of the k hits ("top_k": the lists a
            reranker scores, so it trains and calibrates on that distribution)
        unjudged_weight: label weight of a candidate the qrels do not judge (assumed irrelevant, but some
            are unjudged positives) and of a tie between two unjudged candidates; judged ones weigh 1
        index: FAISS index ("auto": exact below 100k vectors)
        cache_dir: embedding cache folder (None: no cache)
        seed: seed of the pair sampling
        batch_size: encoding batch size
        show_progress_bar: the encoder's progress bar
        strict: refuse a document with neither text nor title (default: skip it and its qrels,
            counted in one warning, as other degenerate data is)
    """

    encoder: str = "minilm"
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    k: int = 100
    negatives: int = 7
    relative_margin: float | None = 0.95
    absolute_margin: float | None = None
    range_min: int = 0
    pairs_k: int = 8
    all_positive_pairs: bool = True
    validation_fraction: float = 0.0
    keep_ranking: bool = False
    candidates: Literal["hard_negatives", "top_k"] = "hard_negatives"
    unjudged_weight: float = 1.0
    index: IndexKind = "auto"
    cache_dir: str | None = ".unirank-cache"
    seed: int = 0
    batch_size: int = 64
    show_progress_bar: bool = True
    strict: bool = False

    def __post_init__(self) -> None:
        for name in ("k", "batch_size", "pairs_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"mining: {name}={getattr(self, name)} must be at least 1")
        if self.negatives < 0 or self.unjudged_weight <= 0:
            raise ValueError(f"mining: negatives={self.negatives} must be ≥ 0 and unjudged_weight > 0")


def mine_beir(directory: str | Path, split: str, config: MiningConfig) -> tuple[Tables, dict]:
    """Mine candidates and labelled comparisons for the judged queries of one BEIR split."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    beir = read_beir(directory, split, strict=config.strict)
    query_ids = sorted(beir.qrels)
    unanswered = [q for q in query_ids if not any(g > 0 for g in beir.qrels[q].values())]
    if unanswered and not config.keep_ranking:  # all grades 0: no pair with a preference to learn
        if len(unanswered) == len(query_ids):
            raise TableError(
                f"{directory}: none of the {len(query_ids)} judged queries of split {split!r} has a relevant "
                "document (every grade is 0): there is nothing to mine pairs from"
            )
        warnings.warn(
            f"{directory}: {len(unanswered)} of {len(query_ids)} judged queries have no relevant document (every "
            f"grade 0; the first: {unanswered[0]!r}); they are left out of the mined pairs",
            stacklevel=2,
        )
        query_ids = sorted(set(query_ids) - set(unanswered))
    doc_ids = list(beir.corpus)
    doc_row = {doc: row for row, doc in enumerate(doc_ids)}
    timings["read_s"] = time.perf_counter() - start

    start = time.perf_counter()
    encoder = Encoder.load(config.encoder, precision=encoding_precision(config.precision))
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
    found, relevant_total, recalls = 0, 0, []
    for q, qid in enumerate(query_ids):
        judged = beir.qrels[qid]
        hit_ids = [doc_ids[r] for r in rows[q] if r >= 0]
        hit_scores = scores[q][rows[q] >= 0]
        relevant = [d for d, g in judged.items() if g > 0]
        retrieved = len(set(relevant) & set(hit_ids))
        found, relevant_total = found + retrieved, relevant_total + len(relevant)
        if relevant:
            recalls.append(retrieved / len(relevant))
        split_name = split if split != "train" else assign_split(qid, config.validation_fraction)
        # validation lists are always the scored depth: the final calibration is fitted on them
        whole_list = config.candidates == "top_k" or split_name == "validation"
        candidates = _candidates(
            config, whole_list, relevant, hit_ids, hit_scores, query_vectors[q], doc_vectors, doc_row
        )
        if not candidates:
            continue
        groups.append({"group_id": qid, "context": beir.queries[qid], "category": None, "split": split_name})
        top_grade = max(max(judged.values()), 1)
        label_weight = [1.0 if doc in judged else config.unjudged_weight for doc, _, _ in candidates]
        for (doc, score, rank), weight in zip(candidates, label_weight):
            grade = judged.get(doc, 0)
            items.append(
                {
                    "group_id": qid,
                    "item_id": doc,
                    "text": beir.corpus[doc],
                    "label": grade / top_grade,
                    "label_weight": weight,
                    "first_stage_score": score,
                    "first_stage_rank": rank,
                }
            )
        if not config.keep_ranking:
            grades = [judged.get(doc, 0) for doc, _, _ in candidates]
            for i, j, p in label_pairs(
                grades, k=config.pairs_k, all_positive_pairs=config.all_positive_pairs, seed=rng
            ):
                unjudged_tie = p == 0.5 and candidates[i][0] not in judged and candidates[j][0] not in judged
                comparisons.append(
                    {
                        "group_id": qid,
                        "item_a": candidates[i][0],
                        "item_b": candidates[j][0],
                        "p": p,
                        "weight": config.unjudged_weight if unjudged_tie else 1.0,
                        "source": "qrels",
                    }
                )
    timings["select_s"] = time.perf_counter() - start
    tables = tables_from_rows(
        groups,
        items,
        comparisons,
        f"mined from {directory}",
        item_columns={"label_weight": pl.Float64, "first_stage_score": pl.Float64, "first_stage_rank": pl.Int64},
    )
    summary = {
        "beir": str(directory),
        "split": split,
        "encoder": config.encoder,
        "precision": encoder.precision,
        "k": config.k,
        "queries": len(query_ids),
        "corpus": len(doc_ids),
        # recall as `evaluate` reports it (ir-measures' R@k: the mean over queries), and pooled
        f"recall@{config.k}": float(np.mean(recalls)) if recalls else None,
        f"recall@{config.k}_pooled": found / relevant_total if relevant_total else None,
        "queries_without_relevant": len(unanswered),
        "index": {"kind": index.kind, **index.params},
        "items": tables.items.height,
        "comparisons": tables.comparisons.height,
        "timings_s": timings,
    }
    return tables, summary


def _candidates(config, whole_list, relevant, hit_ids, hit_scores, query_vector, doc_vectors, doc_row):
    """(doc id, first-stage score, rank) of one query's candidates: the ranking as retrieved
    (keep_ranking), positives + every hit (whole_list), or positives + filtered hard negatives."""
    if config.keep_ranking:
        return [(doc, float(score), rank) for rank, (doc, score) in enumerate(zip(hit_ids, hit_scores))]
    rank_of = {doc: rank for rank, doc in enumerate(hit_ids)}
    positive_scores = np.array([float(doc_vectors[doc_row[d]] @ query_vector) for d in relevant])
    positives = [(d, s, rank_of.get(d, len(hit_ids))) for d, s in zip(relevant, positive_scores)]
    if whole_list:
        hits = [(d, float(s), rank) for rank, (d, s) in enumerate(zip(hit_ids, hit_scores)) if d not in relevant]
        return positives + hits
    negatives = select_negatives(
        hit_ids,
        hit_scores,
        dict.fromkeys(relevant, 1),
        positive_scores,
        count=config.negatives,
        relative_margin=config.relative_margin,
        absolute_margin=config.absolute_margin,
        range_min=config.range_min,
    )
    return positives + negatives


def split_qrels(directory: str | Path, split: str) -> dict[str, dict[str, int]]:
    """The BEIR folder's qrels of one split (mine_beir has checked their ids against the corpus)."""
    return read_qrels(Path(directory) / "qrels" / f"{split}.tsv")


def write_mined(tables: Tables, summary: dict, out_dir: str | Path, qrels: dict | None = None) -> None:
    """groups/items/comparisons.parquet, mining.json and (given) qrels.tsv, the judgments of the
    mined queries, into out_dir as one output: written into a temporary folder that replaces
    out_dir in one rename, so a killed run leaves the old set whole (or none), never new tables
    beside old ones. A non-empty out_dir that is not a mined folder (no mining.json) is refused.
    qrels.tsv lets evaluation count the relevant documents the first stage missed (see
    unirank.evaluation.report.list_qrels)."""
    check_output_folder(out_dir, "mining.json", "mined folder", overwrite=True)
    with atomic_path(out_dir, directory=True) as tmp:
        tables.write(tmp)
        (tmp / "mining.json").write_text(json.dumps(summary, indent=2) + "\n")
        if qrels is not None:
            mined = set(tables.groups["group_id"].to_list())
            write_qrels({q: docs for q, docs in qrels.items() if q in mined}, tmp / "qrels.tsv")
