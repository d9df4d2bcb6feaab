"""Retrieval: (query, document) as a sentence pair; the document is truncated, the query kept.

Encoding is exactly sentence-transformers' CrossEncoder's (a pair, longest-first truncation to
max_length), so an exported reranker scores the same in `CrossEncoder.predict`.
"""

from __future__ import annotations

from unirank.adapters.base import Adapter, Encoded, clip_text


class RetrievalAdapter(Adapter):
    """Query-document pairs for rerankers.

    Args:
        max_length: tokens per (query, document) input, special tokens included.
    """

    domain = "retrieval"

    def __init__(self, max_length: int = 256):
        self.max_length = max_length
        self.init_args = {"max_length": max_length}

    def encode(self, tokenizer, contexts: list[str], candidates: list[str], steps=None) -> list[Encoded]:
        contexts = [clip_text(c, self.max_length) for c in contexts]
        candidates = [clip_text(c, self.max_length) for c in candidates]
        batch = tokenizer(contexts, candidates, truncation="longest_first", max_length=self.max_length)
        types = batch.get("token_type_ids")
        return [Encoded(ids, types[i] if types is not None else None) for i, ids in enumerate(batch["input_ids"])]

    def describe(self) -> dict:
        return {"domain": self.domain, "max_length": self.max_length, "input": "(query, document) sentence pair"}
