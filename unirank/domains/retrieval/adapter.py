"""Retrieval: (query, document) for rerankers; the document is truncated, the query kept.

Encoders: a sentence pair with longest-first truncation to max_length, exactly as
sentence-transformers' CrossEncoder encodes it, so an exported reranker scores the same in
`CrossEncoder.predict`. Decoders: one sequence, the query first (so every document of a query
starts with the same tokens, which a padding-free batch encodes once), the document cut from the
right, then the question the model answers:

    [chat template: user turn]  Query: {query}\nDocument: {document}\n{question}  [assistant turn]

A decoder's score is read at the last token; with the yes/no head it is logit("yes") − logit("no")
there, the answer to the question (the Qwen3-Reranker form).
"""

from __future__ import annotations

from unirank.adapters.base import (
    PAIR_HEADER,
    Adapter,
    Encoded,
    checked_settings,
    clip_text,
    decoder_sequence,
    first_tokens,
    is_encoder_tokenizer,
    literal,
    token_ids,
)

DOCUMENT = "\x00document\x00"
"""Stands for the document while the template is rendered, to cut the rendering around it."""


class RetrievalAdapter(Adapter):
    """Query-document pairs for rerankers.

    Args:
        max_length: tokens per (query, document) input, special tokens included.
        question: what a decoder is asked after the document (the yes/no head reads its answer).
        query_max_length: tokens a decoder keeps from the start of a long query.
    """

    domain = "retrieval"

    def __init__(
        self,
        max_length: int = 256,
        question: str = "Does the document answer the query? Answer yes or no.",
        query_max_length: int = 64,
    ):
        checked_settings(locals(), {"max_length": int, "question": str, "query_max_length": int})
        self.max_length, self.question, self.query_max_length = max_length, question, query_max_length
        self.init_args = {"max_length": max_length, "question": question, "query_max_length": query_max_length}

    def encode(self, tokenizer, contexts: list[str], candidates: list[str], steps=None) -> list[Encoded]:
        contexts = [clip_text(c, self.max_length) for c in contexts]
        candidates = [clip_text(c, self.max_length) for c in candidates]
        if not is_encoder_tokenizer(tokenizer):
            return [self._encode_sequence(tokenizer, q, d) for q, d in zip(contexts, candidates)]
        batch = tokenizer(contexts, candidates, truncation="longest_first", max_length=self.max_length)
        types = batch.get("token_type_ids")
        return [Encoded(ids, types[i] if types is not None else None) for i, ids in enumerate(batch["input_ids"])]

    def _encode_sequence(self, tokenizer, query: str, document: str) -> Encoded:
        query = first_tokens(tokenizer, query, self.query_max_length)
        user = f"Query: {query}\nDocument: {DOCUMENT}\n{self.question}"
        if getattr(tokenizer, "chat_template", None):
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True
            )
        else:
            rendered = user + "\nAnswer:"
        head, tail = rendered.split(DOCUMENT)
        room = max(0, self.max_length - len(token_ids(tokenizer, head)) - len(token_ids(tokenizer, tail)))
        return decoder_sequence(tokenizer, head, first_tokens(tokenizer, document, room), self.max_length, tail=tail)

    def pair_template(self, tokenizer) -> str | None:
        """(query, document) pairs as `encode` renders them for a decoder with a chat template (a
        template-less tokenizer keeps none, so that unirank reads its export as trained)."""
        if is_encoder_tokenizer(tokenizer) or not getattr(tokenizer, "chat_template", None):
            return None
        user = "Query: {{ query }}\nDocument: {{ document }}\n" + literal(self.question)
        return (
            PAIR_HEADER + "{%- set content -%}" + user + "{%- endset -%}\n"
            '{%- set messages = [{"role": "user", "content": content}] -%}\n'
            "{%- set add_generation_prompt = true -%}\n{%- endif -%}\n" + tokenizer.chat_template
        )

    def describe(self) -> dict:
        return {
            "domain": self.domain,
            "max_length": self.max_length,
            "input": "(query, document) sentence pair; decoders: 'Query: q / Document: d / question', "
            "rendered by the chat template where there is one",
            "question": self.question,
        }
