"""Prune a reasoning chain as soon as a step looks wrong: the process reward model scores each step
as it arrives and the chain stops at the first step with σ(r) below the threshold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PruneResult:
    """kept: the accepted steps; rejected_step: 0-based index of the step that fell below the
    threshold (None if none did); probabilities: σ(r) of every step scored; steps_not_generated:
    steps of the full chain never needed (known when the chain's length is)."""

    kept: list[str]
    rejected_step: int | None
    probabilities: list[float]
    steps_not_generated: int | None


def prune_steps(
    module, problem: str, steps: Iterable[str], threshold: float = 0.5, total_steps: int | None = None
) -> PruneResult:
    """Consume `steps` one at a time (a list, or a generator producing them), scoring the prefix
    after each; stop at the first step whose probability is below `threshold`.

    module: a UnirankModule with a ProcessAdapter (e.g. `load_scorer(path).module`). total_steps:
    the chain's full length, when `steps` is a generator that would have produced more."""
    if module.adapter.domain != "process":
        raise ValueError(f"pruning needs a process reward model, got a {module.adapter.domain} model")
    if total_steps is None and isinstance(steps, (list, tuple)):
        total_steps = len(steps)
    seen: list[str] = []
    probabilities: list[float] = []
    for step in steps:
        seen.append(step)
        encoded = module.adapter.encode(module.tokenizer, [problem], [""], steps=[seen])
        _, [step_logits] = module.score_encoded_steps(encoded)
        if len(step_logits) < len(seen):
            raise ValueError(f"step {len(seen)} no longer fits in max_length={module.adapter.max_length}")
        probability = float(1 / (1 + np.exp(-step_logits[-1])))
        probabilities.append(probability)
        if probability < threshold:
            not_generated = None if total_steps is None else total_steps - len(seen)
            return PruneResult(seen[:-1], len(seen) - 1, probabilities, not_generated)
    return PruneResult(seen, None, probabilities, 0 if total_steps is not None else None)
