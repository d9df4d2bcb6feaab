"""Uncertainty per score from one trained model: the head posterior, fitted when training ends.

`fit_uncertainty` scores a sample of the training split once more (the final layer's inputs, the
calibrated logits and the backbone's pooled states), builds the curvature of the data's likelihood
and fits the last-layer Laplace posterior (math: `unirank.fitting.laplace`), and keeps the states as
the novelty reference (`unirank.novelty`). Both are saved next to an export as side files
(`head_posterior.safetensors`, `novelty_reference.safetensors`: the export stays a plain model;
unirank reads them) and in checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unirank.fitting.laplace import HeadPosterior, curvature, fit_posterior
from unirank.novelty import NoveltyReference, fit_reference, reference_from_state, reference_state

POSTERIOR_FILE = "head_posterior.safetensors"
Z_ONE_SIDED_95 = 1.6449


def sample_rows(dataset, max_items: int, seed: int) -> np.ndarray:
    """Items of whole groups drawn at random until max_items: every comparison of a drawn group
    has both of its items in the sample (and every solution its steps)."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    sizes = np.diff(dataset.item_offsets)[order]
    chosen = order[: max(1, int(np.searchsorted(np.cumsum(sizes), max_items, side="right")))]
    rows = [dataset.group_items[dataset.item_offsets[g] : dataset.item_offsets[g + 1]] for g in chosen]
    return np.sort(dataset.with_steps(np.concatenate(rows)))


def fit_uncertainty(
    scorer, dataset, max_items: int = 2048, seed: int = 0, block: int = 1024
) -> tuple[HeadPosterior | None, NoveltyReference | None]:
    """The head posterior of a `Scorer` on (a sample of) the training split and the novelty
    reference of the same sample, from one pass; (None, None) without a split. The posterior reads
    the items whose score is one input of the final layer: a process solution, whose score
    aggregates its steps, is read through its steps (items of their own) alone."""
    if dataset is None or dataset.n_items == 0:
        return None, None
    rows = sample_rows(dataset, max_items, seed)
    logits, features, states = scorer.score_rows(dataset, rows, block, states=True)
    readable = ~np.isnan(features).any(axis=1) & ~np.isnan(logits)
    rows, logits, features, states = rows[readable], logits[readable], features[readable], states[readable]
    local = np.full(dataset.n_items, -1)
    local[rows] = np.arange(len(rows))
    kept = (local[dataset.comp_a] >= 0) & (local[dataset.comp_b] >= 0)
    label = dataset.label[rows]
    labelled_total = int((~np.isnan(dataset.label) & ~dataset.aggregated).sum())
    labelled_sample = int((~np.isnan(label)).sum())
    hessian = curvature(
        features, logits,
        label=label, label_scale=labelled_total / max(1, labelled_sample),
        comp_a=local[dataset.comp_a[kept]], comp_b=local[dataset.comp_b[kept]], weight=dataset.weight[kept],
        comparison_scale=len(dataset.comp_a) / max(1, int(kept.sum())), reading=scorer.pairwise_reading,
    )  # fmt: skip
    fitted_on = (
        f"training split: {len(rows)} of {dataset.n_items} items, {int(kept.sum())} of "
        f"{len(dataset.comp_a)} comparisons, {labelled_sample} of {labelled_total} labels (scaled to the split)"
    )
    posterior = _posterior(scorer, hessian, features, fitted_on, f"{len(rows)} training items")
    contexts = dataset.contexts.gather(dataset.item_group_index[rows]).fill_null("").to_numpy()
    return posterior, fit_reference(states, contexts)


def _posterior(scorer, hessian, features, fitted_on: str, over: str) -> HeadPosterior:
    """The posterior from a curvature, its record for unirank.json, and one line on how wide it is."""
    posterior = fit_posterior(hessian, scorer.head_vector().numpy())
    posterior.info = {
        "method": "last-layer Laplace of the calibrated head, prior precision by MacKay's evidence fixed point",
        "fitted_on": fitted_on,
        "prior_precision": round(posterior.prior_precision, 6),
        "effective_parameters": round(posterior.effective_parameters, 3),
        "pairwise_reading": scorer.pairwise_reading,
    }
    spread = np.sqrt(posterior.item_variance(features))
    print(
        f"head posterior: τ = {posterior.prior_precision:.3g}, {posterior.effective_parameters:.1f} "
        f"well-determined directions; logit standard error median {np.median(spread):.3f} over {over}"
    )
    return posterior


def uncertainty_state(scorer) -> dict:
    """A scorer's head posterior and novelty reference as plain data for a checkpoint."""
    posterior, reference = scorer.head_posterior, scorer.novelty
    return {
        "head_posterior": None if posterior is None else posterior_state(posterior),
        "novelty": None if reference is None else reference_state(reference),
    }


def restore_uncertainty(scorer, state: dict) -> None:
    """Put a checkpoint's head posterior and novelty reference back (None where it has none)."""
    scorer.head_posterior = posterior_from_state(state.get("head_posterior"))
    scorer.novelty = reference_from_state(state.get("novelty"))


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
    prob = 1 / (1 + np.exp(-logits))
    return {
        "logit_std_error": se,
        "probability_std_error": prob * (1 - prob) * se,
        "probability_lower": 1 / (1 + np.exp(-(logits - Z_ONE_SIDED_95 * se))),
    }
