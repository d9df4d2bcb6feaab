"""A model's head posterior at inference: its side file, its checkpoint state, and the standard
error and conservative probability it gives each score (math: `unirank.fitting.laplace`; fitted
when training ends, `unirank.training.uncertainty`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unirank.fitting.laplace import HeadPosterior
from unirank.fitting.links import probability

POSTERIOR_FILE = "head_posterior.safetensors"
Z_ONE_SIDED_95 = 1.6449
Z_TWO_SIDED_95 = 1.9600


def posterior_state(posterior: HeadPosterior) -> dict:
    """Plain data (a tensor and JSON-able values) for checkpoints."""
    return {"covariance": torch.from_numpy(posterior.covariance), "info": json.dumps(posterior.info)}


def posterior_from_state(state: dict | None) -> HeadPosterior | None:
    if not state:
        return None
    info = json.loads(state["info"])
    return HeadPosterior(
        covariance=state["covariance"].double().numpy(),
        prior_precision=info["prior_precision"],
        effective_parameters=info["effective_parameters"],
        info=info,
    )


def save_posterior(posterior: HeadPosterior, folder: Path) -> None:
    from safetensors.torch import save_file

    save_file({"covariance": torch.from_numpy(posterior.covariance).contiguous()}, str(folder / POSTERIOR_FILE))


def load_posterior(folder: Path, info: dict | None) -> HeadPosterior | None:
    """The side file of an export (None where the export has none)."""
    from safetensors.torch import load_file

    path = folder / POSTERIOR_FILE
    if not path.exists() or not info:
        return None
    return posterior_from_state({"covariance": load_file(str(path))["covariance"], "info": json.dumps(info)})


DELTA_METHOD_MAX_SE = 0.5
"""The largest logit standard error at which the probability's delta-method error σ'(r)·se is
reported: beyond it σ's curvature over r ± 2·se makes the linear error mislead (at r = 0 and
se = 0.5 its 95 % half-width is 0.245 against the mapped interval's 0.227; at se = 1, 0.49 against
0.376, and it can pass 1). There the interval mapped through σ is the figure to read."""


def item_uncertainty(posterior: HeadPosterior, logits: np.ndarray, features: np.ndarray) -> dict[str, np.ndarray]:
    """Per item: the logit's standard error se; the probability's 95 % interval mapped through σ,
    [σ(r − 1.96·se), σ(r + 1.96·se)] (`probability_low_95`, `probability_high_95`); a conservative
    probability σ(r − 1.645·se), the one-sided 95 % lower bound; and the probability's delta-method
    standard error σ'(r)·se only where it holds (se ≤ DELTA_METHOD_MAX_SE), else NaN."""
    se = np.sqrt(posterior.item_variance(features))
    prob = probability(logits)
    return {
        "logit_std_error": se,
        "probability_std_error": np.where(se <= DELTA_METHOD_MAX_SE, prob * (1 - prob) * se, np.nan),
        "probability_lower": probability(logits - Z_ONE_SIDED_95 * se),
        "probability_low_95": probability(logits - Z_TWO_SIDED_95 * se),
        "probability_high_95": probability(logits + Z_TWO_SIDED_95 * se),
    }
