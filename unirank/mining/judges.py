"""Soft labels for sampled pairs: a teacher scorer, or an external judge (an LLM or people) by file.

Teacher: p = σ(r_a − r_b) from any scorer that returns logits (a unirank model, or a
sentence-transformers CrossEncoder read without its activation), replacing the qrels' hard labels.

External judges: `write_judge_requests` writes one JSONL row per pair with the two texts in a
random order (the order is recorded, so a judge's position bias does not become a label);
`read_judgments` reads the answers back, any number per pair: p = the fraction preferring item_a
(a tie counts a half), weight = the number of judgments.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from unirank.atomic import atomic_path
from unirank.data.readers import iter_jsonl
from unirank.data.tables import TableError, Tables
from unirank.fitting.links import probability

Scores = Callable[[list[str], list[str]], np.ndarray]
"""(contexts, candidates) → one logit per pair."""


def teacher_comparisons(tables: Tables, scores: Scores, source: str = "teacher") -> pl.DataFrame:
    """The comparisons table with p = σ(r_a − r_b) from the teacher's logits (weight kept; anchor
    comparisons, which a teacher cannot judge, are left out)."""
    logits = np.asarray(scores(tables.item_contexts(), tables.items["text"].to_list()), dtype=np.float64)
    comps = tables.indexed_comparisons()
    p = probability(logits[comps["_a"].to_numpy()] - logits[comps["_b"].to_numpy()])
    return comps.select("group_id", "item_a", "item_b", pl.Series("p", p), "weight", pl.lit(source).alias("source"))


def cross_encoder_logits(model) -> Scores:
    """A sentence-transformers CrossEncoder as a teacher: its raw logits (no activation)."""
    import torch

    def scores(contexts: list[str], candidates: list[str]) -> np.ndarray:
        return model.predict(
            list(zip(contexts, candidates)),
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=False,
        )

    return scores


def write_judge_requests(tables: Tables, path: str | Path, seed: int = 0) -> int:
    """One row per comparison: pair_id, context, text_a, text_b (random order) and the item ids in
    that order. Returns the number of rows. Written atomically."""
    rng = np.random.default_rng(seed)
    contexts = dict(tables.groups.select("group_id", "context").iter_rows())
    texts = {(g, i): t for g, i, t in tables.items.select("group_id", "item_id", "text").iter_rows()}
    rows = tables.comparisons.select("group_id", "item_a", "item_b").iter_rows()
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        count = 0
        for count, (group, a, b) in enumerate(rows, start=1):
            first, second = (b, a) if rng.random() < 0.5 else (a, b)
            handle.write(
                json.dumps(
                    {
                        "pair_id": f"{group}\x1f{a}\x1f{b}",
                        "group_id": group,
                        "context": contexts[group],
                        "item_a": first,
                        "item_b": second,
                        "text_a": texts[(group, first)],
                        "text_b": texts[(group, second)],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    return count


def read_judgments(path: str | Path, source: str = "judge") -> pl.DataFrame:
    """Judgments JSONL rows {pair_id, item_a, item_b, preferred: "a" | "b" | "tie"} (item_a/item_b as
    in the request) → comparisons: p = fraction preferring the pair's first item, weight = count."""
    path = Path(path)
    votes: dict[tuple[str, str, str], list[float]] = {}
    for line, row in iter_jsonl(path):
        missing = [k for k in ("pair_id", "item_a", "item_b", "preferred") if k not in row]
        if missing:
            raise TableError(f"{path}, line {line}: missing field(s) {missing}")
        wrong = [k for k in ("pair_id", "item_a", "item_b", "preferred") if not isinstance(row[k], str)]
        if wrong:
            raise TableError(f"{path}, line {line}: field(s) {wrong} must be strings")
        try:
            group, a, b = row["pair_id"].split("\x1f")
        except (AttributeError, ValueError):
            raise TableError(f"{path}, line {line}: pair_id {row['pair_id']!r} is not one of the requests") from None
        if {row["item_a"], row["item_b"]} != {a, b}:
            raise TableError(f"{path}, line {line}: item_a/item_b do not match pair_id")
        verdict = {"a": 1.0, "b": 0.0, "tie": 0.5}.get(row["preferred"])
        if verdict is None:
            raise TableError(f"{path}, line {line}: preferred must be 'a', 'b' or 'tie', got {row['preferred']!r}")
        shown_first_is_a = row["item_a"] == a
        votes.setdefault((group, a, b), []).append(verdict if shown_first_is_a or verdict == 0.5 else 1.0 - verdict)
    if not votes:
        raise TableError(f"{path}: no judgments")
    return comparisons_from_votes(votes, source)


def comparisons_from_votes(votes: dict[tuple[str, str, str], list[float]], source: str) -> pl.DataFrame:
    """{(group, item_a, item_b): votes for item_a (1, 0, or ½ for a tie)} → comparisons: p = the
    share of votes for item_a, weight = their number."""
    keys = list(votes)
    return pl.DataFrame(
        {
            "group_id": [k[0] for k in keys],
            "item_a": [k[1] for k in keys],
            "item_b": [k[2] for k in keys],
            "p": [float(np.mean(votes[k])) for k in keys],
            "weight": [float(len(votes[k])) for k in keys],
            "source": [source] * len(keys),
        },
        schema={"group_id": pl.String, "item_a": pl.String, "item_b": pl.String, "p": pl.Float64,
                "weight": pl.Float64, "source": pl.String},
    )  # fmt: skip
