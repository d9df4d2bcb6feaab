"""A scorer: a transformer backbone with a scalar head, r = f(context, candidate), read as a logit.

Built on transformers' AutoModelForSequenceClassification with num_labels=1, so an exported
scorer loads in transformers and sentence-transformers unchanged. Encoders read the first token
(BERT's pooler); decoders read the last non-pad token, as transformers does once a pad token is set.
Weights load as safetensors only; remote code runs only when `trust_remote_code=True` is asked.
A `Scorer` does all inference (texts, encoded inputs, data set rows, step positions, with the
final layer's inputs when the head posterior needs them); training wraps one in `UnirankModule`.
In both, a BERT-family encoder's last layer runs only at the tokens the head reads
(`unirank.read_out`): the same logits and gradients, most of one layer's work saved.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from unirank.adapters.base import Batch
from unirank.adapters.process import aggregate_steps
from unirank.models import resolve_model_path
from unirank.packing import Layout, Packing, attention_inputs, is_packed, sequences_in
from unirank.precision import warn_if_emulated_bf16
from unirank.progress import ProgressLines
from unirank.read_out import reading_positions, supports_read_out

PROGRESS_FROM = 5000
"""Scoring this many sequences or more at once prints a line every 10 % where output goes to a log."""

TINY_CONFIG = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512
)


class ModelFolderError(ValueError):
    """A local model folder that cannot be loaded as it is (the message names what is missing)."""


class RemoteCodeError(ValueError):
    """A model whose backbone runs its own code, loaded without trust_remote_code=True."""


TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)


def check_model_folder(path: Path) -> None:
    """A local folder must hold a config, safetensors weights and a tokenizer: transformers would
    otherwise fall back to defaults (a placeholder vocabulary) and score silently wrong."""
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").exists():
        missing.append("*.safetensors weights")
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        missing.append(f"tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    if missing:
        raise ModelFolderError(f"{path}: not a complete model folder: missing {'; '.join(missing)}")


def load_backbone(name_or_path: str, trust_remote_code: bool = False, seed: int = 0, head: str = "scalar"):
    """(model, tokenizer) for a name, a local path, `minilm` (packaged all-MiniLM-L6-v2) or `tiny`
    (a 2-layer, 32-wide BERT built in-process with MiniLM's tokenizer, for tests and debugging).
    head: "scalar" (a new linear head, or the one a sequence-classification checkpoint has) or
    "yes-no" (a causal LM read as logit("yes") − logit("no"), `unirank.yes_no`)."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    if name_or_path == "tiny":
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
        config = BertConfig(vocab_size=tokenizer.vocab_size, num_labels=1, **TINY_CONFIG)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = BertForSequenceClassification(config)
        return model, tokenizer
    path = resolve_model_path(name_or_path)
    if Path(path).is_dir():
        check_model_folder(Path(path))
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if head == "yes-no":
        from transformers import AutoModelForCausalLM

        from unirank.yes_no import answer_token_ids, scorer_from_causal_lm

        causal = AutoModelForCausalLM.from_pretrained(path, use_safetensors=True, trust_remote_code=trust_remote_code)
        model = scorer_from_causal_lm(causal, *answer_token_ids(tokenizer, ("yes", "no")))
    elif head != "scalar":
        raise ValueError(f"head must be 'scalar' or 'yes-no', got {head!r}")
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # the new head's initialisation
            model = AutoModelForSequenceClassification.from_pretrained(
                path, num_labels=1, use_safetensors=True, trust_remote_code=trust_remote_code
            )
    if tokenizer.pad_token is None:  # decoders: pad with EOS; the head reads the last non-pad token
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


@dataclass(frozen=True)
class BatchScores:
    """items: one logit per batch item; steps (process domain): one logit per kept step, with the
    batch position of its solution (step_owner) and its 0-based step number (step_index)."""

    items: torch.Tensor
    steps: torch.Tensor | None = None
    step_owner: torch.Tensor | None = None
    step_index: torch.Tensor | None = None


class Scorer(nn.Module):
    """Inference: r = model(input_ids, ...).logits[:, 0] over inputs the adapter formats.

    Holds the backbone with its scalar head, the tokenizer, the domain adapter, and what training
    learnt about its scores: `final_calibration` (the fit folded into the head, as unirank.json
    records it), `head_posterior` (a `fitting.laplace.HeadPosterior`, or None), `novelty` (a
    `novelty.NoveltyReference` of training inputs' backbone states, or None) and `pairwise_reading`
    (how two of its logits read as P(a ≻ b): "thurstone" after the pointwise stage on Thurstone
    targets, else "bradley-terry"). chunk_size: sequences per forward pass when scoring lists;
    packing: a decoder's padding-free rows and shared prompts (`unirank.packing`).

    Decoders (a `score` head on a causal backbone) are read at each input's last token (each
    step's last token for process inputs): the backbone runs, its final states are gathered there
    and the head is applied to those states only.
    """

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
        self.final_calibration: dict | None = None
        self.head_posterior = None
        self.novelty = None
        self.pairwise_reading = "bradley-terry"
        self.sequences_encoded = 0
        self.read_out = supports_read_out(model)
        """Whether the final layer runs only where the head reads (`unirank.read_out`): on for
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
        lines = ProgressLines(total, "scored", every=10.0) if total >= PROGRESS_FROM and not self.training else None
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
        first = _first_steps(owner, len(order))
        step_index = torch.arange(len(owner), device=device) - first[owner]
        items = aggregate_steps(steps, owner, len(order), self.adapter.aggregation)
        if batch.sources is not None:  # units: a solution's own score, or one of its steps'
            at_step = steps[_unit_steps(first, len(owner), batch)]
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
        return inputs if batch.sources is None else _unit_features(inputs, out, batch)

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

    def score_rows(self, dataset, rows: np.ndarray, block: int = 4096, features: bool = False, states: bool = False):
        """Scores of a data set's items at these rows (`GroupDataset.scoring_batch`: a step item is
        read from its solution's input), `block` at a time; NaN for a step that truncation cut.
        features: (scores, the final layer's input of each item, NaN rows where cut); states:
        (scores, those inputs, the pooled final state of each item's input, NaN rows where cut)."""
        rows = np.asarray(rows, dtype=np.int64)
        scores, extras = np.full(len(rows), np.nan), [None, None]
        for start in range(0, len(rows), block):
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
        wanted = [e if e is not None else np.zeros((len(rows), 0)) for e in extras[: 2 if states else 1]]
        return (scores, *wanted) if features or states else scores

    def score_positions(self, rows: torch.Tensor, cols: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The scalar head applied at token (rows[i], cols[i]) of the batch: one logit per position.

        The head is the model's own: BERT-style pooler (dense + tanh) then classifier, or a
        decoder's `score` layer, so position 0 of an encoder (or the last token of a decoder)
        gives exactly forward()'s logit. A packed chunk (rows all 0) is read at its row's columns."""
        model = self.model
        # a packed sequence's tokens are those its last token attends to (what its pooled state averages)
        self._packed_members = inputs["attention_mask"][0, 0, inputs["read_cols"]] if is_packed(inputs) else None
        if is_packed(inputs):
            inputs = attention_inputs(inputs, model.config._attn_implementation, next(model.parameters()).dtype)
        with self._reading(inputs, rows, cols):
            hidden = model.base_model(**inputs).last_hidden_state[rows, cols]
        pooler = getattr(model.base_model, "pooler", None)
        if hasattr(model, "classifier") and pooler is not None:
            return model.classifier(model.dropout(pooler.activation(pooler.dense(hidden))))[:, 0]
        if hasattr(model, "score"):
            return model.score(hidden)[:, 0]
        raise TypeError(f"{type(model).__name__}: no known scalar head to apply at step positions")

    def set_dropout(self, p: float) -> None:
        """Every dropout layer (attention's included: transformers' attention reads its module's p)
        drops with probability p while training. The model's config is left as it is, so an export
        fine-tunes elsewhere with the backbone's own dropout."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout={p} must be in [0, 1)")
        for module in self.model.modules():
            if isinstance(module, nn.Dropout):
                module.p = p

    def final_layer(self) -> nn.Linear:
        """The linear layer that outputs the logit: BERT-style `classifier` or a decoder's `score`."""
        layer = getattr(self.model, "classifier", None) or getattr(self.model, "score", None)
        if isinstance(layer, nn.Linear):
            return layer
        layer = getattr(layer, "out_proj", None)  # RoBERTa-style classification head
        if isinstance(layer, nn.Linear):
            return layer
        raise TypeError(f"{type(self.model).__name__}: no linear output layer to fold a calibration into")

    @torch.no_grad()
    def fold_affine(self, a: float, b: float) -> None:
        """Make the model output a·r + b instead of r by scaling the output layer's weight and bias
        (r = w·h + c → (a·w)·h + (a·c + b)): still one plain linear head. A layer without a bias
        takes b = 0 only."""
        layer = self.final_layer()
        if layer.bias is None and b != 0:
            raise ValueError(f"{type(self.model).__name__}: the output layer has no bias, so b must be 0")
        for module in (self.model.score if self.reads_last_token else None, layer):
            if hasattr(module, "reshard"):  # sharded (FSDP2): change the shards, not a gathered copy
                module.reshard()
        layer.weight.mul_(a)
        if layer.bias is not None:
            layer.bias.mul_(a).add_(b)

    @contextlib.contextmanager
    def capturing_head_inputs(self):
        """Collect the final linear layer's input x of every forward pass (float32, detached) in
        the yielded list, one tensor per call: the features a head posterior reads."""
        captured: list[torch.Tensor] = []
        handle = self.final_layer().register_forward_hook(
            lambda layer, inputs, output: captured.append(inputs[0].detach().float())
        )
        try:
            yield captured
        finally:
            handle.remove()

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

    def head_vector(self) -> torch.Tensor:
        """θ = [weight, bias] of the output layer (bias 0 where it has none), float64."""
        layer = self.final_layer()
        weight = _whole(layer.weight.detach())
        bias = _whole(layer.bias.detach()).reshape(1) if layer.bias is not None else torch.zeros(1)
        return torch.cat([weight.reshape(-1), bias]).double().cpu()

    def has_output_bias(self) -> bool:
        return self.final_layer().bias is not None

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters of the new scalar head (and BERT's pooler, which feeds only the head)."""
        return [p for n, p in self.model.named_parameters() if _is_head(n) and p.requires_grad]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The backbone's trainable parameters (its LoRA adapters alone where it has them)."""
        return [p for n, p in self.model.named_parameters() if not _is_head(n) and p.requires_grad]


def _whole(tensor: torch.Tensor) -> torch.Tensor:
    """A weight sharded across processes (a DTensor) gathered whole; a plain tensor as it is."""
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


def reads_last_token(model: nn.Module) -> bool:
    """Whether the model is a decoder read at its last token: a `score` head on a causal backbone
    (transformers' *ForSequenceClassification of Llama, Qwen, Gemma, Mistral, GPT-2, GPT-NeoX...)."""
    return hasattr(model, "score") and not hasattr(model, "classifier")


def _is_head(name: str) -> bool:
    return (
        name.startswith(("classifier.", "score.", "pooler.", "bert.pooler.", "roberta.pooler.")) or ".pooler." in name
    )


def _first_steps(owner: torch.Tensor, n_inputs: int) -> torch.Tensor:
    """Per input, the index of its first step in the flat step scores (an input's steps are contiguous)."""
    first = torch.zeros(n_inputs, dtype=torch.long, device=owner.device)
    return first.scatter_reduce(0, owner, torch.arange(len(owner), device=owner.device), "amin", include_self=False)


def _unit_steps(first: torch.Tensor, n_steps: int, batch: Batch) -> torch.Tensor:
    """Per unit of a batch with `sources`, the index of its step in the flat step scores (any step
    of its input for a unit read as a whole solution, positions = −1); first: `_first_steps`."""
    sources, positions = batch.sources.to(first.device), batch.positions.to(first.device)
    return (first[sources] + positions.clamp(min=0)).clamp(max=n_steps - 1)


def _unit_features(step_inputs: torch.Tensor, out: BatchScores, batch: Batch) -> torch.Tensor:
    """The final layer's input of every unit of a batch with `sources`: a step's own; NaN for a
    solution, whose score aggregates its steps' (no single input of the final layer gives it)."""
    first = _first_steps(out.step_owner.to(step_inputs.device), len(batch.order))
    inputs = step_inputs[_unit_steps(first, len(step_inputs), batch)]
    whole = (batch.positions.to(inputs.device) < 0)[:, None]
    return torch.where(whole, torch.full_like(inputs, float("nan")), inputs)
