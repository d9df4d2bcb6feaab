"""The scorer: a transformer with a scalar head, r = f(context, candidate), read as a logit.

A `Scorer` runs every forward pass: texts, encoded inputs, data set rows and step positions, with
the final layer's inputs (what the head posterior reads) or pooled states (what novelty reads) when
asked. Training wraps one in `UnirankModule`; users get one inside `unirank.model.Model`. Encoders
read the first token (a BERT-family encoder runs its last layer only there, `read_out`); decoders
read the last real token.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from unirank.adapters.base import Batch
from unirank.domains.process.adapter import aggregate_steps
from unirank.model.head import ScalarHead, reads_last_token
from unirank.model.packing import Layout, Packing, attention_inputs, is_packed, packed_members, sequences_in
from unirank.model.precision import warn_if_emulated_bf16
from unirank.model.read_out import reading_positions, supports_read_out
from unirank.model.step_index import first_steps, unit_features, unit_steps
from unirank.progress import ProgressLines

PROGRESS_FROM = 5000  # scoring this many sequences or more at once prints a line every 10 % to a log


@dataclass(frozen=True)
class BatchScores:
    """items: one logit per batch item; steps (process domain): one logit per kept step, with the
    batch position of its solution (step_owner) and its 0-based step number (step_index)."""

    items: torch.Tensor
    steps: torch.Tensor | None = None
    step_owner: torch.Tensor | None = None
    step_index: torch.Tensor | None = None


class Scorer(ScalarHead, nn.Module):
    """Inference: r = model(input_ids, ...).logits[:, 0] over inputs the adapter formats.

    Holds the backbone with its scalar head, the tokenizer, the domain adapter, and what training
    learnt about its scores: `final_calibration` (the fit folded into the head, as unirank.json
    records it), `head_posterior` (a `fitting.laplace.HeadPosterior`, or None), `novelty` (a
    `novelty.NoveltyReference` of training inputs' backbone states, or None) and `pairwise_reading`
    (how two of its logits read as P(a ≻ b): "thurstone" after the pointwise stage on Thurstone
    targets, else "bradley-terry"). chunk_size: sequences per forward pass when scoring lists;
    packing: a decoder's padding-free rows and shared prompts (`unirank.model.packing`)."""

    def __init__(
        self, model: nn.Module, tokenizer=None, adapter=None, chunk_size: int = 32, packing: Packing = Packing()
    ):
        super().__init__()
        self.model, self.tokenizer, self.adapter = model, tokenizer, adapter
        self.reads_last_token = reads_last_token(model)
        if packing.padding_free and not self.reads_last_token:
            raise ValueError(
                f"{type(model).__name__}: padding-free batches need a decoder (an encoder attends both ways "
                "across a packed row's sequences); leave packing.padding_free off for encoders"
            )
        self.layout = Layout(getattr(tokenizer, "pad_token_id", None), chunk_size, packing)
        self._packed_members: torch.Tensor | None = None
        self._fallbacks: dict[tuple[str, str], str] = {}
        """(device type, packing.attention) → the kernel used where the asked one is unavailable."""
        self.final_calibration: dict | None = None
        self.head_posterior = None
        self.novelty = None
        self.pairwise_reading = "bradley-terry"
        self.sequences_encoded = 0
        self.progress: bool | None = None
        """Progress lines while scoring lists: None where output is a log and the list is long, True always, False never."""
        self.read_out = supports_read_out(model)
        """Whether the final layer runs only where the head reads (`unirank.model.read_out`): on for
        BERT-family encoders, off while `capturing_states` reads every token's final state."""

    @property
    def chunk_size(self) -> int:
        """Sequences per forward pass when scoring lists in padded chunks (the layout's)."""
        return self.layout.chunk_size

    @chunk_size.setter
    def chunk_size(self, size: int) -> None:
        self.layout = replace(self.layout, chunk_size=size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """One logit per input of a chunk (padded or packed)."""
        if self.reads_last_token:
            if is_packed(inputs):
                cols = inputs["read_cols"]
                return self.score_positions(torch.zeros_like(cols), cols, **inputs)
            mask = inputs["attention_mask"]
            rows = torch.arange(mask.shape[0], device=mask.device)
            return self.score_positions(rows, mask.sum(1) - 1, **inputs)  # right padding: the last real token
        with self._reading(inputs):
            return self.model(**inputs).logits[:, 0]

    def _reading(self, inputs: dict, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None):
        """The final layer restricted to tokens (rows, cols), by default each input's first token,
        where `read_out` is on; else nothing."""
        if not self.read_out:
            return contextlib.nullcontext()
        ids = inputs["input_ids"]
        if rows is None:
            rows = torch.arange(ids.shape[0], device=ids.device)
            cols = torch.zeros_like(rows)
        mask = inputs.get("attention_mask")
        return reading_positions(self.model, torch.ones_like(ids) if mask is None else mask, rows, cols)

    # ---- scoring ------------------------------------------------------------------------------
    def score_batch(self, batch: Batch) -> BatchScores:
        """Scores of every item of a `Batch` (its chunks and order: float32, batch order), each
        item encoded exactly once. Process inputs also give every kept step's score; the item score
        is their aggregate (the adapter's `aggregation`)."""
        item_outputs, step_outputs, step_rows = [], [], []
        offset, device = 0, self.device
        total = len(batch.order)
        quiet = self.training or self.progress is False or (self.progress is None and total < PROGRESS_FROM)
        lines = None if quiet else ProgressLines(total, "scored", every=10.0, enabled=self.progress)
        for chunk in batch.chunks:
            chunk = {k: v.to(device) for k, v in chunk.items()}
            size = sequences_in(chunk)
            self.sequences_encoded += size
            if "step_rows" in chunk:
                rows, cols = chunk.pop("step_rows"), chunk.pop("step_cols")
                token_rows = torch.zeros_like(rows) if is_packed(chunk) else rows  # a packed chunk is one row
                step_outputs.append(self.score_positions(token_rows, cols, **chunk).float())
                step_rows.append(rows + offset)
            else:
                item_outputs.append(self(**chunk).float())
            offset += size
            if lines is not None:
                lines.update(offset)
        order = batch.order.to(device)
        if not step_outputs:
            sorted_scores = torch.cat(item_outputs)
            scores = torch.empty_like(sorted_scores)
            scores[order] = sorted_scores
            return BatchScores(items=scores if batch.sources is None else scores[batch.sources.to(device)])
        steps = torch.cat(step_outputs)
        owner = order[torch.cat(step_rows)]  # sorted row → batch position of the step's solution
        first = first_steps(owner, len(order))
        step_index = torch.arange(len(owner), device=device) - first[owner]
        items = aggregate_steps(steps, owner, len(order), self.adapter.aggregation)
        if batch.sources is not None:  # units: a solution's own score, or one of its steps'
            at_step = steps[unit_steps(first, len(owner), batch)]
            items = torch.where(batch.positions.to(device) >= 0, at_step, items[batch.sources.to(device)])
        return BatchScores(items=items, steps=steps, step_owner=owner, step_index=step_index)

    @torch.no_grad()
    def _score(
        self, batch: Batch, bf16: bool = False, features: bool = False, states: bool = False
    ) -> tuple[BatchScores, torch.Tensor | None, torch.Tensor | None]:
        """score_batch in eval mode (the training mode is restored); bf16: under bfloat16 autocast
        (about 2x faster where the hardware has bf16, logits within ~1e-2); features: also the final
        layer's input of every item (process inputs: of every step, in the order of `steps`);
        states: also the backbone's pooled final state of every item's input (`capturing_states`)."""
        device = self.device
        if bf16:
            warn_if_emulated_bf16(device.type, "fp32 (--precision fp32, bf16=False)")
        was_training = self.training
        self.eval()
        try:
            # nullcontext, not autocast(enabled=False): a caller's own autocast stays in force
            precision = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            capture = self.capturing_head_inputs() if features else contextlib.nullcontext()
            capture_states = self.capturing_states() if states else contextlib.nullcontext()
            with precision, capture as captured, capture_states as pooled:
                out = self.score_batch(batch)
            return out, self._item_features(captured, out, batch), self._in_batch_order(pooled, batch)
        finally:
            self.train(was_training)

    def _item_features(self, captured: list | None, out: BatchScores, batch: Batch) -> torch.Tensor | None:
        """The captured head inputs per item (per step where the batch scores steps and no units)."""
        if captured is None:
            return None
        if out.steps is None:
            return self._in_batch_order(captured, batch)
        inputs = torch.cat(captured)  # one feature per step, in out.steps' order
        return inputs if batch.sources is None else unit_features(inputs, out.step_owner, batch)

    @staticmethod
    def _in_batch_order(captured: list | None, batch: Batch) -> torch.Tensor | None:
        """Rows captured chunk by chunk (sorted by length) put back in batch order, then read per unit."""
        if captured is None:
            return None
        in_order = torch.empty_like(sorted_rows := torch.cat(captured))
        in_order[batch.order.to(in_order.device)] = sorted_rows
        return in_order if batch.sources is None else in_order[batch.sources.to(in_order.device)]

    def _score_encoded(self, encoded: list, bf16: bool = False, features: bool = False, states: bool = False):
        return self._score(Batch.of(encoded, self.layout), bf16, features, states)

    def score_encoded(self, encoded: list, bf16: bool = False) -> np.ndarray:
        """Scores of already-encoded inputs (`Adapter.encode`), in eval mode, chunk by chunk."""
        if not encoded:
            return np.zeros(0)
        return self._score_encoded(encoded, bf16)[0].items.cpu().numpy().astype(np.float64)

    def score_encoded_with_features(self, encoded: list, bf16: bool = False, states: bool = False) -> tuple:
        """(scores, the final layer's input of each item): what the head posterior reads; states:
        also each input's pooled final state, what novelty reads."""
        out, features, pooled = self._score_encoded(encoded, bf16, features=True, states=states)
        readings = (out.items.cpu().numpy().astype(np.float64), features.cpu().numpy().astype(np.float64))
        return readings + ((pooled.cpu().numpy(),) if states else ())

    def score_encoded_steps(self, encoded: list, bf16: bool = False, features: bool = False, states: bool = False):
        """Process inputs: (solution scores, one array of step logits per solution), eval mode; with
        features, also one (steps × width) array of the final layer's inputs per solution; with
        states, also each solution input's pooled final state (last)."""
        out, step_features, pooled = self._score_encoded(encoded, bf16, features, states)
        owner, steps = out.step_owner.cpu().numpy(), out.steps.cpu().numpy().astype(np.float64)
        solutions = out.items.cpu().numpy().astype(np.float64)
        readings = (solutions, [steps[owner == i] for i in range(len(encoded))])
        if features:
            step_features = step_features.cpu().numpy().astype(np.float64)
            readings += ([step_features[owner == i] for i in range(len(encoded))],)
        return readings + ((pooled.cpu().numpy(),) if states else ())

    def encode(self, contexts: list[str], candidates: list[str], steps: list | None = None) -> list:
        """(context, candidate[, steps]) formatted and tokenised by the adapter."""
        extra = {} if steps is None else {"steps": steps}
        return self.adapter.encode(self.tokenizer, contexts, candidates, **extra)

    def score_texts(self, contexts: list[str], candidates: list[str], bf16: bool = False) -> np.ndarray:
        """r for each (context, candidate), formatted by the adapter."""
        return self.score_encoded(self.encode(contexts, candidates), bf16)

    def score_rows(self, dataset, rows, block: int = 512, features=False, states=False, progress: str | None = None):
        """Scores of a data set's items at these rows (a step read from its solution's input), NaN for
        a step truncation cut; with features, also the final layer's inputs; with states, also the
        pooled final states (NaN rows where cut). progress: a label for a line every 10 % with the time left."""
        rows = np.asarray(rows, dtype=np.int64)
        scores, extras = np.full(len(rows), np.nan), [None, None]
        lines = ProgressLines(len(rows), progress or "", every=10.0, enabled=bool(progress))
        for start in range(0, len(rows), block):
            lines.update(start)
            batch, kept = dataset.scoring_batch(rows[start : start + block], self.layout)
            if not len(kept):
                continue
            out, *readings = self._score(batch, features=features or states, states=states)
            at = start + np.flatnonzero(np.isin(rows[start : start + block], kept))
            scores[at] = out.items.cpu().numpy()
            for k, reading in enumerate(readings):
                if reading is not None:
                    extras[k] = np.full((len(rows), reading.shape[1]), np.nan) if extras[k] is None else extras[k]
                    extras[k][at] = reading.cpu().numpy()
        lines.update(len(rows))
        wanted = [e if e is not None else np.zeros((len(rows), 0)) for e in extras[: 2 if states else 1]]
        return (scores, *wanted) if features or states else scores

    def score_positions(self, rows: torch.Tensor, cols: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The scalar head applied at token (rows[i], cols[i]) of the batch: one logit per position.

        The head is the model's own: BERT-style pooler (dense + tanh) then classifier, or a
        decoder's `score` layer, so position 0 of an encoder (or the last token of a decoder)
        gives exactly forward()'s logit. A packed chunk (rows all 0) is read at its row's columns."""
        model = self.model
        # a packed sequence's tokens are those its last token attends to (what its pooled state averages)
        self._packed_members = packed_members(inputs) if is_packed(inputs) else None
        if is_packed(inputs):
            kernel = self.packed_attention()
            inputs = attention_inputs(inputs, kernel, next(model.parameters()).dtype)
        with self._reading(inputs, rows, cols):
            hidden = model.base_model(**inputs).last_hidden_state[rows, cols]
        pooler = getattr(model.base_model, "pooler", None)
        if hasattr(model, "classifier") and pooler is not None:
            return model.classifier(model.dropout(pooler.activation(pooler.dense(hidden))))[:, 0]
        if hasattr(model, "score"):
            return model.score(hidden)[:, 0]
        raise TypeError(f"{type(model).__name__}: no known scalar head to apply at step positions")

    def packed_attention(self) -> str:
        """The attention kernel packed rows run through on the model's device now
        (`Packing.attention_for`), set on the model where it differs; "auto" falls back to sdpa,
        said once, for a model transformers runs without FlexAttention."""
        packing, device_type = self.layout.packing, self.device.type
        key = (device_type, packing.attention)
        kernel = self._fallbacks.get(key) or packing.attention_for(device_type)
        if self.model.config._attn_implementation != kernel:
            try:
                self.model.set_attn_implementation(kernel)
            except (ValueError, ImportError) as error:
                if packing.attention != "auto":
                    raise ValueError(f"packing.attention={kernel}: {error}") from None
                print(f"packed rows: {kernel} unavailable for {type(self.model).__name__} ({error}); using sdpa")
                kernel = self._fallbacks[key] = "sdpa"
                self.model.set_attn_implementation(kernel)
        return kernel

    @contextlib.contextmanager
    def capturing_states(self):
        """Collect the backbone's final hidden states mean-pooled over each input's tokens (float32,
        detached) in the yielded list, one tensor per forward pass: what novelty reads."""
        captured: list[torch.Tensor] = []

        def pool(module, args, kwargs, output):
            hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
            mask = kwargs.get("attention_mask")
            if self._packed_members is not None:  # a packed row: a sequence's tokens, its shared prompt's included
                seen = self._packed_members.to(hidden.dtype)
                captured.append(((seen @ hidden[0]) / seen.sum(1, keepdim=True)).detach().float())
                self._packed_members = None
                return
            if mask is None or mask.dim() != 2:
                captured.append(hidden.detach().float().mean(1))
                return
            weight = mask.unsqueeze(-1).to(hidden.dtype)
            captured.append(((hidden * weight).sum(1) / weight.sum(1).clamp(min=1)).detach().float())

        handle = self.model.base_model.register_forward_hook(pool, with_kwargs=True)
        read_out, self.read_out = self.read_out, False
        try:
            yield captured
        finally:
            handle.remove()
            self.read_out = read_out
