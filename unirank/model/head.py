"""The scalar head of a scorer's model: find its output layer, fold an affine map into it, read
its parameters θ = [w, c], capture its inputs, and tell head from backbone parameters.

A BERT-family encoder's head is its pooler (dense + tanh) and `classifier`; a decoder's is its
`score` layer (a yes/no causal LM is read through one too, `unirank.model.yes_no`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


class ScalarHead:
    """Methods on `self.model`, a *ForSequenceClassification model with one output (mixed into `Scorer`)."""

    model: nn.Module
    reads_last_token: bool

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

    def head_vector(self) -> torch.Tensor:
        """θ = [weight, bias] of the output layer (bias 0 where it has none), float64, on the CPU
        (where the posterior is fitted), wherever the layer lives."""
        layer = self.final_layer()
        weight = _whole(layer.weight.detach()).reshape(-1).double().cpu()
        no_bias = torch.zeros(1, dtype=torch.float64)
        return torch.cat([weight, _whole(layer.bias.detach()).double().cpu() if layer.bias is not None else no_bias])

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


def _is_head(name: str) -> bool:
    return (
        name.startswith(("classifier.", "score.", "pooler.", "bert.pooler.", "roberta.pooler.")) or ".pooler." in name
    )


def reads_last_token(model: nn.Module) -> bool:
    """Whether the model is a decoder read at its last token: a `score` head on a causal backbone
    (transformers' *ForSequenceClassification of Llama, Qwen, Gemma, Mistral, GPT-2, GPT-NeoX...)."""
    return hasattr(model, "score") and not hasattr(model, "classifier")
