"""Process rewards: a problem and a solution's steps, every step scored in ONE forward pass.

Layout (encoders with [CLS]/[SEP], e.g. BERT): [CLS] problem [SEP] step₁ [SEP] step₂ [SEP] …
Layout (decoders): [BOS] problem \\n\\n step₁ \\n\\n step₂ \\n\\n …
Each piece is tokenised on its own and the pieces concatenated, so step boundaries are exact for
any tokenizer; step i's score r_i is read at its last token (with a decoder's causal attention,
r_i depends on the problem and steps ≤ i only). Truncation keeps the start of the problem (up to
`problem_max_length` tokens) and as many whole steps as fit; the cut steps are reported. A first
step that alone overflows is cut to its start, so every solution keeps at least one scored step.

Solution scores aggregate the step scores (logits):
    min: min_i r_i    last: r_n    mean: mean_i r_i
    product: logit(Π_i σ(r_i)), so σ(score) = P(every step is correct) if the steps are independent.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from unirank.adapters.base import Adapter, Encoded, checked_settings

Aggregation = Literal["min", "product", "last", "mean"]


def aggregate_steps(step_scores: torch.Tensor, owner: torch.Tensor, n_items: int, how: Aggregation) -> torch.Tensor:
    """One solution logit per item from its steps' logits (owner[i] = the item of step i)."""
    if how == "min":
        out = torch.full((n_items,), float("inf"), dtype=step_scores.dtype, device=step_scores.device)
        return out.scatter_reduce(0, owner, step_scores, reduce="amin", include_self=True)
    if how == "mean":
        out = torch.zeros(n_items, dtype=step_scores.dtype, device=step_scores.device)
        return out.scatter_reduce(0, owner, step_scores, reduce="mean", include_self=False)
    if how == "last":
        out = torch.zeros(n_items, dtype=step_scores.dtype, device=step_scores.device)
        last = torch.zeros(n_items, dtype=torch.long, device=owner.device)
        positions = torch.arange(len(owner), device=owner.device)
        last = last.scatter_reduce(0, owner, positions, reduce="amax", include_self=False)
        return out + step_scores[last]
    if how == "product":
        log_p = torch.zeros(n_items, dtype=step_scores.dtype, device=step_scores.device)
        log_p = log_p.index_add(0, owner, F.logsigmoid(step_scores))
        return log_p - torch.log(-torch.expm1(log_p.clamp(max=-1e-7)))
    raise ValueError(f"aggregation must be min, product, last or mean, got {how!r}")


class ProcessAdapter(Adapter):
    """Problem + step-wise solution inputs for process reward models.

    Args:
        max_length: tokens per solution input, special tokens included.
        problem_max_length: tokens kept from the start of the problem.
        aggregation: how step scores make a solution score (min, product, last, mean).
    """

    domain = "process"
    reads_steps = True

    def __init__(self, max_length: int = 512, problem_max_length: int = 128, aggregation: Aggregation = "min"):
        if aggregation not in ("min", "product", "last", "mean"):
            raise ValueError(f"aggregation must be min, product, last or mean, got {aggregation!r}")
        checked_settings(locals(), {"max_length": int, "problem_max_length": int})
        self.max_length, self.problem_max_length, self.aggregation = max_length, problem_max_length, aggregation
        self.init_args = {
            "max_length": max_length,
            "problem_max_length": problem_max_length,
            "aggregation": aggregation,
        }

    def encode(self, tokenizer, contexts: list[str], candidates: list[str], steps=None) -> list[Encoded]:
        if steps is None:
            raise ValueError("the process adapter needs the steps of each solution (items.steps)")
        return [
            self._encode_one(tokenizer, problem, solution_steps) for problem, solution_steps in zip(contexts, steps)
        ]

    def _encode_one(self, tokenizer, problem: str, steps: list[str]) -> Encoded:
        if not steps:
            raise ValueError("a solution needs at least one step")
        pieces = tokenizer([problem, *steps], add_special_tokens=False, verbose=False)["input_ids"]
        problem_ids, step_ids = pieces[0][: self.problem_max_length], pieces[1:]
        if tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None:
            head, separator, types = [tokenizer.cls_token_id], [tokenizer.sep_token_id], True
        else:
            head = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
            separator, types = tokenizer("\n\n", add_special_tokens=False)["input_ids"], False
        ids = head + problem_ids + separator
        first_step_token = len(ids)
        ends, cut = [], []
        for index, step in enumerate(step_ids):
            if not step:
                raise ValueError(f"step {index + 1} is empty")
            room = self.max_length - len(ids) - len(separator)
            if not ends and len(step) > room:
                step = step[:room]  # a first step longer than the room left: keep its start rather than nothing
            if cut or len(step) > room or room <= 0:
                cut.append(index)  # whole steps only; once one is cut, every later one is too
                continue
            ids += step
            ends.append(len(ids) - 1)
            ids += separator
        if not ends:
            raise ValueError(f"max_length={self.max_length} leaves no room for a step after the problem")
        token_types = [0] * first_step_token + [1] * (len(ids) - first_step_token) if types else None
        # decoders: the solutions of one problem share its tokens (a padding-free batch encodes them once)
        prefix = 0 if types else first_step_token
        return Encoded(ids, token_types, step_ends=ends, cut_steps=tuple(cut), prefix_length=prefix)

    def describe(self) -> dict:
        return {
            "domain": self.domain,
            "max_length": self.max_length,
            "problem_max_length": self.problem_max_length,
            "aggregation": self.aggregation,
            "input": "[CLS] problem [SEP] step [SEP] step [SEP] ... (decoders: problem and steps, blank lines between)",
            "step_score": "the scalar head applied at each step's last token; σ(r_i) = P(step i is correct)",
        }
