"""The final transformer layer computed only at the positions the head reads.

A scalar head reads one state per input (an encoder's first token) or one per step (process
models). Every layer but the last must run over all tokens, since the last layer's keys and values
are read from all of them; the last layer's queries, attention output and feed-forward are needed
only at the read positions. For MiniLM-L6 at 128 tokens that is ~14 % of the forward pass (per
token of one layer in six, the queries' and attention output's 2·d² and the feed-forward's 8·d² of
its 12·d² multiply-adds; the keys' and values' 2·d² remain), with the same logits (the same
operations on the same inputs; float rounding aside).

Supported: BERT-family encoders (BERT, RoBERTa, XLM-R, ELECTRA: `encoder.layer[i].attention.self`
with query/key/value, `attention.output`, `feed_forward_chunk`) with absolute positions. Anything
else runs the full forward pass (`supports_read_out` says which). While the read-out runs, the
backbone's `last_hidden_state` is NaN outside the read positions, so a reader of other tokens fails
loudly instead of reading the previous layer's states.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn


def _last_layer(model: nn.Module) -> nn.Module | None:
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    return layers[-1] if isinstance(layers, nn.ModuleList) and len(layers) else None


def supports_read_out(model: nn.Module) -> bool:
    """Whether `model` is an encoder whose last layer `reading_positions` can compute at a few positions."""
    config = model.config
    if getattr(config, "is_decoder", False) or getattr(config, "position_embedding_type", "absolute") != "absolute":
        return False
    if not hasattr(model, "classifier"):  # decoders' `score` reads the last token; keep their own path
        return False
    layer = _last_layer(model)
    attention = getattr(getattr(layer, "attention", None), "self", None)
    names = ("query", "key", "value", "num_attention_heads", "attention_head_size", "scaling", "dropout")
    return (
        attention is not None
        and all(hasattr(attention, n) for n in names)
        and not getattr(attention, "is_causal", False)
        and hasattr(layer.attention, "output")
        and hasattr(layer, "feed_forward_chunk")
        and not getattr(layer, "add_cross_attention", False)
    )


class _ReadOutLayer(nn.Module):
    """Stands in for the last layer: its own weights, applied at `index` (batch × slots of token
    positions; `valid` marks the real slots) with keys and values from every unmasked token."""

    def __init__(self, layer: nn.Module, key_mask: torch.Tensor, index: torch.Tensor, valid: torch.Tensor):
        super().__init__()
        self.layer, self.key_mask, self.index, self.valid = layer, key_mask, index, valid

    def forward(self, hidden: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        layer, attention = self.layer, self.layer.attention.self
        batch, length, width = hidden.shape
        heads, size = attention.num_attention_heads, attention.attention_head_size
        read = hidden.gather(1, self.index[..., None].expand(-1, -1, width))  # batch × slots × width

        def split(x):  # batch × n × width → batch × heads × n × size
            return x.view(batch, -1, heads, size).transpose(1, 2)

        context = F.scaled_dot_product_attention(
            split(attention.query(read)),
            split(attention.key(hidden)),
            split(attention.value(hidden)),
            attn_mask=self.key_mask[:, None, None, :],
            dropout_p=attention.dropout.p if self.training else 0.0,
            scale=attention.scaling,
        )
        context = context.transpose(1, 2).reshape(batch, -1, heads * size)
        out = layer.feed_forward_chunk(layer.attention.output(context, read))
        rows = torch.arange(batch, device=hidden.device)[:, None].expand_as(self.index)
        full = torch.full((batch, length, out.shape[-1]), float("nan"), dtype=out.dtype, device=out.device)
        full[rows[self.valid], self.index[self.valid]] = out[self.valid]
        return full


def read_slots(rows: torch.Tensor, cols: torch.Tensor, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(index, valid): token positions (rows[i], cols[i]) laid out as batch × slots, slot k of row
    b holding b's k-th position (padded with position 0, valid False)."""
    counts = torch.bincount(rows, minlength=batch)
    order = torch.argsort(rows, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.empty_like(rows)
    slot[order] = torch.arange(len(rows), device=rows.device) - starts[rows[order]]
    width = int(counts.max()) if len(rows) else 1
    index = torch.zeros(batch, width, dtype=torch.long, device=rows.device)
    valid = torch.zeros(batch, width, dtype=torch.bool, device=rows.device)
    index[rows, slot], valid[rows, slot] = cols, True
    return index, valid


@contextlib.contextmanager
def reading_positions(model: nn.Module, attention_mask: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor):
    """Within the block, `model`'s last layer runs only at tokens (rows[i], cols[i]) of the batch
    whose padding `attention_mask` (batch × length, 1 = token) gives; the model must pass
    `supports_read_out`. The layer is put back on exit."""
    layers = model.base_model.encoder.layer
    last = layers[-1]
    index, valid = read_slots(rows, cols, attention_mask.shape[0])
    layers[-1] = _ReadOutLayer(last, attention_mask.bool(), index, valid).train(last.training)
    try:
        yield
    finally:
        layers[-1] = last
