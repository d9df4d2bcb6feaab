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


def item_uncertainty(posterior: HeadPosterior, logits: np.ndarray, features: np.ndarray) -> dict[str, np.ndarray]:
    """Per item: the logit's standard error, the probability's (delta method: σ'(r)·se) and a
    conservative probability σ(r − 1.645·se), the one-sided 95 % lower bound."""
    se = np.sqrt(posterior.item_variance(features))
    prob = probability(logits)
    return {
        "logit_std_error": se,
        "probability_std_error": prob * (1 - prob) * se,
        "probability_lower": probability(logits - Z_ONE_SIDED_95 * se),
    }
