"""The adapter protocol and the shared collation: dynamic padding in length-sorted chunks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(frozen=True)
class Encoded:
    """One model input, unpadded: token ids and, for encoders with segments, token type ids.

    Process inputs also carry step_ends (the position of each kept step's last token, where its
    score is read) and cut_steps (indices of the steps truncation left out). prefix_length: how many
    leading tokens are the context alone (the rendered prompt, query or problem), which inputs of
    one context share token for token (`unirank.model.packing` encodes them once; 0: none)."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None
    step_ends: list[int] | None = None
    cut_steps: tuple[int, ...] = ()
    prefix_length: int = 0


@dataclass
class Batch:
    """What a step scores and what its losses read.

    chunks / order: the encoded inputs as padded, length-sorted chunks (`pad_chunks`) or packed
    rows (`unirank.model.packing.pack_chunks`). The scored
    items ("units") are the inputs themselves, or, with `sources`, unit i is read from input
    sources[i]: its own score where positions[i] = −1, else the score at its step positions[i] (a
    process step is an item of its own; `unirank.data.steps`). The rest in unit order: item_index
    (rows of the split), group_id / item_id, label (NaN where none), label_weight, anchor_p (the
    label where it is the item's only evidence, compared with the anchor at r ≡ 0; else NaN),
    teacher (the first stage's score, NaN where none), group_sizes (units per sampled group, in
    order), and the comparisons as unit positions comp_a ≻ comp_b with their observed preference p
    and weight. A batch for scoring alone carries chunks and order only (`Batch.of`)."""

    chunks: list[dict[str, torch.Tensor]]
    order: torch.Tensor
    sources: torch.Tensor | None = None
    positions: torch.Tensor | None = None
    item_index: torch.Tensor | None = None
    group_id: list[str] = field(default_factory=list)
    item_id: list[str] = field(default_factory=list)
    label: torch.Tensor | None = None
    label_weight: torch.Tensor | None = None
    anchor_p: torch.Tensor | None = None
    teacher: torch.Tensor | None = None
    group_sizes: list[int] = field(default_factory=list)
    comp_a: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    comp_b: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    p: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    weight: torch.Tensor = field(default_factory=lambda: torch.zeros(0))

    @classmethod
    def of(cls, encoded: list[Encoded], layout) -> Batch:
        """Encoded inputs as a batch to score (no comparisons, no labels), laid out by a
        `unirank.model.packing.Layout`."""
        return cls(*layout.chunks(encoded))


class Adapter(ABC):
    """Turns (context, candidate) into model inputs. Subclasses set `domain`, keep their __init__
    arguments in `init_args` (the checkpoint rebuilds the adapter from them) and describe themselves
    for the export's unirank.json."""

    domain: str
    max_length: int
    init_args: dict
    reads_steps: bool = False
    """Whether a model scores each step of a solution (`encode`'s `steps`): pruning and step scoring need it."""

    @abstractmethod
    def encode(
        self, tokenizer, contexts: list[str], candidates: list[str], steps: list[list[str]] | None = None
    ) -> list[Encoded]:
        """One unpadded model input per (context, candidate); `steps` (process domain) splits each
        candidate into its steps."""

    @abstractmethod
    def describe(self) -> dict:
        """How inputs are formed, for users of the exported model."""

    def pair_template(self, tokenizer) -> str | None:
        """A decoder export's chat template: it renders a sentence-transformers (query, document)
        pair (messages with those roles) as this adapter's input text and every other conversation
        as the tokenizer's own template does; None where inputs are sentence pairs (encoders)."""
        return None


def checked_settings(settings: dict, kinds: dict[str, type]) -> None:
    """Checks an adapter's __init__ arguments, each of its kind (a token count: an int ≥ 1, never a bool);
    ValueError names the first that is not. The same check serves a recipe and an edited
    unirank.json (whose adapter record rebuilds the adapter)."""
    for name, kind in kinds.items():
        value = settings[name]
        wrong = isinstance(value, bool) != (kind is bool) or not isinstance(value, kind)
        if wrong or (kind is int and value < 1):
            expected = "a whole number of tokens ≥ 1" if kind is int else f"a {kind.__name__}"
            raise ValueError(f"{name} must be {expected}, got {value!r}")


def is_encoder_tokenizer(tokenizer) -> bool:
    """Whether inputs take the encoder layout ([CLS] a [SEP] b [SEP], sentence pairs): the
    tokenizer has both a CLS and a SEP token. Decoders' tokenizers have neither."""
    return tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None


def token_ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def first_tokens(tokenizer, text: str, n: int) -> str:
    """The text of `text`'s first n tokens (cut at a token boundary)."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    return text if n >= len(offsets) else ("" if n <= 0 else text[: offsets[n - 1][1]])


def last_tokens(tokenizer, text: str, n: int) -> str:
    """The text of `text`'s last n tokens (cut at a token boundary)."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    return text if n >= len(offsets) else ("" if n <= 0 else text[offsets[len(offsets) - n][0] :])


def decoder_sequence(tokenizer, head: str, body: str, max_length: int, cut: str = "body", tail: str = "") -> Encoded:
    """One decoder input: `head` (the context: a rendered prompt, a query), `body`, then `tail`,
    tokenised together as transformers and sentence-transformers tokenise the whole text, at most
    max_length tokens. cut="body" keeps head and tail and cuts the body's end; cut="head" keeps the
    body and cuts the head's start. prefix_length: the leading tokens that are the head's own (one
    less where a token spans the border), which every input of that head shares token for token."""
    for _ in range(8):  # the parts counted apart can differ from the whole by a token at each border
        ids = token_ids(tokenizer, head + body + tail)
        excess = len(ids) - max_length
        if excess <= 0:
            break
        part = head if cut == "head" and head else body
        kept = max(0, len(token_ids(tokenizer, part)) - excess)
        if part is head:
            head = last_tokens(tokenizer, head, kept)
        else:
            body = first_tokens(tokenizer, body, kept)
    ids = ids[:max_length]
    head_ids = token_ids(tokenizer, head)
    shared = next((i for i, (a, b) in enumerate(zip(ids, head_ids)) if a != b), min(len(ids), len(head_ids)))
    return Encoded(ids, prefix_length=shared if shared < len(ids) else 0)


PAIR_HEADER = (
    '{%- if messages | selectattr("role", "eq", "document") | list -%}\n'
    '{%- set query = (messages | selectattr("role", "eq", "query") | first)["content"] -%}\n'
    '{%- set document = (messages | selectattr("role", "eq", "document") | first)["content"] -%}\n'
)


def literal(text: str) -> str:
    """`text` as literal template text (no Jinja syntax read in it)."""
    return "{% raw %}" + text + "{% endraw %}"


CHARS_PER_TOKEN = 32
"""No token of a real text spans more characters than this, so a text cut to max_length × 32
characters before tokenising gives the same tokens after truncation, without tokenising megabytes."""


def clip_text(text: str, max_length: int, keep: str = "head") -> str:
    """`text` cut to max_length × CHARS_PER_TOKEN characters, keeping its head (or its tail)."""
    limit = max_length * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    return text[:limit] if keep == "head" else text[-limit:]


def pad_chunks(
    encoded: list[Encoded], pad_id: int, chunk_size: int
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Sort sequences by length, cut into chunks of ≤ chunk_size, pad each chunk to its own longest.

    Returns (chunks, order): chunk tensors in sorted order, and `order` such that the scores of the
    chunks, concatenated, are the scores of encoded[order]. Padding is right-sided; decoders read
    the last non-pad token, encoders the first. With step_ends, a chunk also holds step_rows and
    step_cols (where each step's score is read), in sequence order then step order.
    """
    lengths = np.fromiter((len(e.input_ids) for e in encoded), dtype=np.int64, count=len(encoded))
    order = np.argsort(lengths, kind="stable")
    chunks = []
    for start in range(0, len(order), chunk_size):
        rows = order[start : start + chunk_size]
        members = [encoded[i] for i in rows]
        filled = np.arange(lengths[rows].max()) < lengths[rows][:, None]  # row-major, as the ids concatenate
        ids = np.full(filled.shape, pad_id, dtype=np.int64)
        ids[filled] = np.concatenate([e.input_ids for e in members])
        chunk = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(filled.astype(np.int64))}
        if members[0].token_type_ids is not None:
            types = np.zeros(filled.shape, dtype=np.int64)
            types[filled] = np.concatenate([e.token_type_ids for e in members])
            chunk["token_type_ids"] = torch.from_numpy(types)
        if members[0].step_ends is not None:
            chunk["step_rows"] = torch.tensor(
                [row for row, e in enumerate(members) for _ in e.step_ends], dtype=torch.long
            )
            chunk["step_cols"] = torch.tensor([c for e in members for c in e.step_ends], dtype=torch.long)
        chunks.append(chunk)
    return chunks, torch.from_numpy(order)
