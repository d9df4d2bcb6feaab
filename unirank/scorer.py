"""A scorer: a transformer backbone with a scalar head, r = f(context, candidate), read as a logit.

Built on transformers' AutoModelForSequenceClassification with num_labels=1, so an exported
scorer loads in transformers and sentence-transformers unchanged. Encoders read the first token
(BERT's pooler); decoders read the last non-pad token, as transformers does once a pad token is set.
Weights load as safetensors only; remote code runs only when `trust_remote_code=True` is asked.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from unirank.models import resolve_model_path

TINY_CONFIG = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512
)


class ModelFolderError(ValueError):
    """A local model folder that cannot be loaded as it is (the message names what is missing)."""


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


def load_backbone(name_or_path: str, trust_remote_code: bool = False, seed: int = 0):
    """(model, tokenizer) for a name, a local path, `minilm` (packaged all-MiniLM-L6-v2) or `tiny`
    (a 2-layer, 32-wide BERT built in-process with MiniLM's tokenizer, for tests and debugging)."""
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
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the new head's initialisation
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=1, use_safetensors=True, trust_remote_code=trust_remote_code
        )
    if tokenizer.pad_token is None:  # decoders: pad with EOS; the head reads the last non-pad token
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


class Scorer(nn.Module):
    """r = model(input_ids, ...).logits[:, 0]."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**inputs).logits[:, 0]

    def score_positions(self, rows: torch.Tensor, cols: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        """The scalar head applied at token (rows[i], cols[i]) of the batch: one logit per position.

        The head is the model's own: BERT-style pooler (dense + tanh) then classifier, or a
        decoder's `score` layer, so position 0 of an encoder (or the last token of a decoder)
        gives exactly forward()'s logit."""
        model = self.model
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

    def head_vector(self) -> torch.Tensor:
        """θ = [weight, bias] of the output layer (bias 0 where it has none), float64."""
        layer = self.final_layer()
        bias = layer.bias.detach().reshape(1) if layer.bias is not None else torch.zeros(1)
        return torch.cat([layer.weight.detach().reshape(-1), bias]).double().cpu()

    def has_output_bias(self) -> bool:
        return self.final_layer().bias is not None

    def head_parameters(self) -> list[nn.Parameter]:
        """The parameters of the new scalar head (and BERT's pooler, which feeds only the head)."""
        head = [p for n, p in self.model.named_parameters() if _is_head(n)]
        return head

    def backbone_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.model.named_parameters() if not _is_head(n)]


def _is_head(name: str) -> bool:
    return (
        name.startswith(("classifier.", "score.", "pooler.", "bert.pooler.", "roberta.pooler.")) or ".pooler." in name
    )
