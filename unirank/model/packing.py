"""Padding-free batches for decoders: a batch's sequences end to end in one row, no pad token.

A packed row holds several sequences; each keeps its own positions (restarting at 0) and attends
only to itself (a block-diagonal causal mask), so every token sees exactly what it sees in a padded
batch and the logits are the padded batch's. With prefix sharing, sequences that start with the same
`prefix_length` tokens (a group's prompt, a query, a problem) hold ONE copy of that prefix:

    row:      [ prompt | response 1 | response 2 | prompt' | response 3 ]
    position:   0..P-1   P..P+L1-1    P..P+L2-1    0..P'-1   P'..
    attends:    prompt causally; response i: the prompt and itself, causally

so a response sees the prompt and itself at the positions it has alone, and a prompt shared by k
responses is encoded once instead of k times. Causal attention is what makes this exact: the
prompt's states never depend on what follows it. Encoders attend both ways and cannot share a prefix.

A row holds at most `max_tokens` tokens (a sequence longer than that gets a row of its own). A row
carries who may attend to whom as two vectors, not a T × T mask: `block_ids` (which run of
sequences a token belongs to: one prompt and its responses) and `sequence_ids` (which sequence;
−1 for a shared prompt). Token q may attend to token k where

    k ≤ q  and  block[k] = block[q]  and  (sequence[k] = −1  or  sequence[k] = sequence[q]).

`attention_inputs` turns that rule into what the attention kernel reads, on the row's device: a
FlexAttention `BlockMask` (`flex_attention`: blocks of 128 × 128 tokens that are all masked are
skipped, so cost follows the tokens that attend, and a long row costs no T × T memory), a dense
boolean mask (`sdpa`; `eager` gets it as an additive mask), or nothing for flash-attention's varlen
kernel (it reads the borders from the position ids; no prefix sharing). `Packing.attention` picks
the kernel: "auto" is flex_attention on a CUDA GPU (where SDPA's fast kernels refuse a dense mask)
and sdpa elsewhere (FlexAttention has no backward pass on the CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from unirank.adapters.base import Encoded, pad_chunks


@dataclass(frozen=True)
class Packing:
    """How a decoder's batches are laid out (a recipe's `model.packing`).

    padding_free: sequences end to end in rows of at most max_tokens tokens, no pad token;
    share_prefix: sequences that begin with the same prompt hold one copy of it (needs padding_free);
    attention: the kernel a decoder attends through when padding_free is on: "auto" (flex_attention
    on a CUDA GPU, sdpa elsewhere), "flex_attention", "sdpa", "eager", or "flash_attention_2"
    (needs the flash-attn package; no share_prefix). Encoders always run padded batches (their
    attention reads both ways)."""

    padding_free: bool = False
    share_prefix: bool = False
    max_tokens: int = 4096
    attention: Literal["auto", "flex_attention", "sdpa", "eager", "flash_attention_2"] = "auto"

    def __post_init__(self) -> None:
        if self.share_prefix and not self.padding_free:
            raise ValueError("packing: share_prefix=true needs padding_free=true")
        if self.max_tokens < 1:
            raise ValueError(f"packing: max_tokens={self.max_tokens} must be at least 1")
        if self.attention not in ("auto", "flex_attention", "sdpa", "eager", "flash_attention_2"):
            raise ValueError(f"packing: attention={self.attention!r} is not a kernel unirank knows")
        if self.attention.startswith("flash_attention") and self.share_prefix:
            raise ValueError("packing: flash_attention_2 cannot attend across a shared prefix; use share_prefix=false")

    def attention_for(self, device_type: str) -> str:
        """The kernel packed rows attend through on a device type ("cuda", "cpu", ...)."""
        if self.attention != "auto":
            return self.attention
        return "flex_attention" if device_type == "cuda" else "sdpa"


@dataclass(frozen=True)
class Layout:
    """Encoded inputs → forward passes: padded length-sorted chunks of chunk_size sequences
    (`pad_chunks`), or packed rows (`pack_chunks`) where `packing.padding_free` is on."""

    pad_id: int
    chunk_size: int = 32
    packing: Packing = Packing()

    def chunks(self, encoded: list[Encoded]) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
        if self.packing.padding_free:
            return pack_chunks(encoded, self.packing.max_tokens, self.packing.share_prefix)
        return pad_chunks(encoded, self.pad_id, self.chunk_size)


def _units(encoded: list[Encoded], share_prefix: bool, max_tokens: int) -> list[tuple[int, list[int]]]:
    """Runs of sequences packed as one block: (shared prefix length, sequence indices). Sequences
    with an identical prefix share it (in runs that fit max_tokens); every other sequence is alone."""
    if not share_prefix:
        return [(0, [i]) for i in range(len(encoded))]
    by_prefix: dict[tuple, list[int]] = {}
    for i, e in enumerate(encoded):
        key = tuple(e.input_ids[: e.prefix_length]) if 0 < e.prefix_length < len(e.input_ids) else ("alone", i)
        by_prefix.setdefault(key, []).append(i)
    units = []
    for key, members in by_prefix.items():
        prefix = len(key) if key[0] != "alone" else 0
        run, size = [], prefix
        for i in sorted(members, key=lambda i: len(encoded[i].input_ids)):
            extra = len(encoded[i].input_ids) - prefix
            if run and size + extra > max_tokens:
                units.append((prefix, run))
                run, size = [], prefix
            run.append(i)
            size += extra
        units.append((prefix, run))
    return units


def pack_chunks(
    encoded: list[Encoded], max_tokens: int = 4096, share_prefix: bool = False
) -> tuple[list[dict[str, torch.Tensor]], torch.Tensor]:
    """Pack sequences into rows of at most max_tokens tokens (sequence boundaries kept).

    Returns (chunks, order) as `pad_chunks` does: the scores of the chunks, concatenated, are the
    scores of encoded[order]. A chunk is one row: input_ids and position_ids (1 × T), block_ids and
    sequence_ids (T: who attends to whom, see the module's docstring), read_cols (each sequence's last
    token: where its score is read, in order), token_type_ids where the inputs have them, and for process inputs step_rows (the
    step's sequence within the chunk) and step_cols (its last token in the row)."""
    units = _units(encoded, share_prefix, max_tokens)
    sizes = [prefix + sum(len(encoded[i].input_ids) - prefix for i in members) for prefix, members in units]
    rows, current, filled = [], [], 0
    for unit in np.argsort(sizes, kind="stable"):
        if current and filled + sizes[unit] > max_tokens:
            rows.append(current)
            current, filled = [], 0
        current.append(units[unit])
        filled += sizes[unit]
    if current:
        rows.append(current)
    chunks = [_pack_row(encoded, row) for row in rows]
    order = [i for row in rows for _, members in row for i in members]
    return chunks, torch.tensor(order, dtype=torch.long)


def _pack_row(encoded: list[Encoded], units: list[tuple[int, list[int]]]) -> dict[str, torch.Tensor]:
    ids, positions, types, block, sequence = [], [], [], [], []
    read_cols, step_rows, step_cols = [], [], []
    with_types = encoded[units[0][1][0]].token_type_ids is not None
    with_steps = encoded[units[0][1][0]].step_ends is not None
    n = 0
    for u, (prefix, members) in enumerate(units):
        if prefix:
            head = encoded[members[0]]
            ids += head.input_ids[:prefix]
            positions += range(prefix)
            types += (head.token_type_ids or [])[:prefix]
            block += [u] * prefix
            sequence += [-1] * prefix  # the shared prefix: every sequence of the block sees it
        for i in members:
            e = encoded[i]
            start = len(ids) - prefix  # where position 0 of this sequence would sit in the row
            ids += e.input_ids[prefix:]
            positions += range(prefix, len(e.input_ids))
            types += (e.token_type_ids or [])[prefix:]
            block += [u] * (len(e.input_ids) - prefix)
            sequence += [n] * (len(e.input_ids) - prefix)
            read_cols.append(len(ids) - 1)
            if with_steps:
                step_rows += [n] * len(e.step_ends)
                step_cols += [start + c for c in e.step_ends]
            n += 1
    chunk = {
        "input_ids": torch.tensor([ids], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "block_ids": torch.tensor(block, dtype=torch.long),
        "sequence_ids": torch.tensor(sequence, dtype=torch.long),
        "read_cols": torch.tensor(read_cols, dtype=torch.long),
    }
    if with_types:
        chunk["token_type_ids"] = torch.tensor([types], dtype=torch.long)
    if with_steps:
        chunk["step_rows"] = torch.tensor(step_rows, dtype=torch.long)
        chunk["step_cols"] = torch.tensor(step_cols, dtype=torch.long)
    return chunk


def is_packed(chunk: dict) -> bool:
    """Whether a chunk is a packed row (`pack_chunks`) rather than a padded batch (`pad_chunks`)."""
    return "read_cols" in chunk


def sequences_in(chunk: dict) -> int:
    """How many sequences (scored inputs) a chunk holds."""
    return len(chunk["read_cols"]) if is_packed(chunk) else chunk["input_ids"].shape[0]


ROW_KEYS = ("read_cols", "block_ids", "sequence_ids")
"""A packed chunk's entries that describe the row; the model reads none of them."""


def dense_mask(block_ids: torch.Tensor, sequence_ids: torch.Tensor) -> torch.Tensor:
    """The row's T × T boolean mask (True: may attend), on the ids' device."""
    positions = torch.arange(len(block_ids), device=block_ids.device)
    causal = positions[None, :] <= positions[:, None]
    same_block = block_ids[:, None] == block_ids[None, :]
    visible = (sequence_ids[None, :] == -1) | (sequence_ids[None, :] == sequence_ids[:, None])
    return causal & same_block & visible


def block_mask(block_ids: torch.Tensor, sequence_ids: torch.Tensor):
    """The row's mask as a FlexAttention `BlockMask`, built on the ids' device."""
    from torch.nn.attention.flex_attention import create_block_mask

    def may_attend(batch, head, q, k):
        return (
            (k <= q) & (block_ids[k] == block_ids[q]) & ((sequence_ids[k] == -1) | (sequence_ids[k] == sequence_ids[q]))
        )

    length = len(block_ids)
    return create_block_mask(may_attend, None, None, length, length, device=block_ids.device)


def packed_members(chunk: dict) -> torch.Tensor:
    """Per read sequence of a packed chunk, the tokens its last token attends to (n × T, bool):
    the sequence and its shared prompt (what its pooled state averages)."""
    block, sequence, cols = chunk["block_ids"], chunk["sequence_ids"], chunk["read_cols"]
    positions = torch.arange(len(block), device=block.device)
    mine = (block[None, :] == block[cols][:, None]) & (
        (sequence[None, :] == -1) | (sequence[None, :] == sequence[cols][:, None])
    )
    return mine & (positions[None, :] <= cols[:, None])


def attention_inputs(chunk: dict, attn_implementation: str, dtype: torch.dtype) -> dict:
    """A packed chunk's model inputs for an attention implementation: flex_attention takes a
    `BlockMask`; sdpa the boolean mask; eager an additive one (0 where attended, the dtype's
    minimum elsewhere); flash-attention's varlen kernel none (it reads the sequence borders from the
    position ids), which cannot express a shared prefix."""
    inputs = {k: v for k, v in chunk.items() if k not in ROW_KEYS}
    block, sequence = chunk["block_ids"], chunk["sequence_ids"]
    if attn_implementation == "flex_attention":
        inputs["attention_mask"] = block_mask(block, sequence)
    elif attn_implementation.startswith("flash_attention"):
        positions = chunk["position_ids"][0]
        restarts = positions[1:] <= positions[:-1]
        if bool((restarts & (positions[1:] != 0)).any()):  # a sequence that continues a shared prefix
            raise ValueError(
                f"{attn_implementation} cannot attend across a shared prefix; train with packing.share_prefix=false "
                "or packing.attention=flex_attention"
            )
    else:
        mask = dense_mask(block, sequence)[None, None]
        if attn_implementation == "eager":
            mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        inputs["attention_mask"] = mask
    return inputs
