"""Uncertainty per score from one trained model: the head posterior, fitted when training ends.

`fit_head_posterior` scores a sample of the training split once more (the final layer's inputs and
the calibrated logits), builds the curvature of the data's likelihood and fits the last-layer
Laplace posterior (math: `unirank.fitting.laplace`). It is saved next to an export as
`head_posterior.safetensors` (the export stays a plain model; unirank reads the side file) and in
checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unirank.fitting.laplace import HeadPosterior, curvature, fit_posterior

POSTERIOR_FILE = "head_posterior.safetensors"
Z_ONE_SIDED_95 = 1.6449


def sample_rows(dataset, max_items: int, seed: int) -> np.ndarray:
    """Items of whole groups drawn at random until max_items: every comparison of a drawn group
    has both of its items in the sample."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    sizes = np.diff(dataset.item_offsets)[order]
    chosen = order[: max(1, int(np.searchsorted(np.cumsum(sizes), max_items, side="right")))]
    rows = [dataset.group_items[dataset.item_offsets[g] : dataset.item_offsets[g + 1]] for g in chosen]
    return np.sort(np.concatenate(rows))


def fit_head_posterior(scorer, dataset, max_items: int = 2048, seed: int = 0, block: int = 1024):
    """The head posterior of a `Scorer` on (a sample of) the training split (process models: from
    the labelled steps of the sampled solutions), or None without a split."""
    if dataset is None or dataset.n_items == 0:
        return None
    rows = sample_rows(dataset, max_items, seed)
    if dataset.step_labels is not None:
        return _step_posterior(scorer, dataset, rows, block)
    blocks = [rows[i : i + block] for i in range(0, len(rows), block)]
    parts = [scorer.score_encoded_with_features(dataset.encode(chunk)) for chunk in blocks]
    logits = np.concatenate([p[0] for p in parts])
    features = np.concatenate([p[1] for p in parts])
    local = np.full(dataset.n_items, -1)
    local[rows] = np.arange(len(rows))
    kept = (local[dataset.comp_a] >= 0) & (local[dataset.comp_b] >= 0)
    label = dataset.label[rows]
    labelled_total = int((~np.isnan(dataset.label)).sum())
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
    return _posterior(scorer, hessian, features, "", fitted_on, f"{len(rows)} training items")


def _step_posterior(scorer, dataset, rows: np.ndarray, block: int) -> HeadPosterior:
    """Process models: the curvature of the step labels' likelihood (every step a labelled item)."""
    from unirank.training.final_calibration import step_scores

    logits, labels, _, features = step_scores(scorer, dataset, rows, block, features=True)
    labelled = int((~np.isnan(labels)).sum())
    every = sum(v is not None for x in dataset.step_labels.to_list() for v in (x or []))  # the split's labelled steps
    hessian = curvature(features, logits, label=labels, label_scale=every / max(1, labelled))
    fitted_on = (
        f"training split: {labelled} labelled steps of {len(rows)} of {dataset.n_items} solutions "
        f"(scaled to the split's {every})"
    )
    return _posterior(scorer, hessian, features, " (steps)", fitted_on, f"{len(logits)} steps")


def _posterior(scorer, hessian, features, unit: str, fitted_on: str, over: str) -> HeadPosterior:
    """The posterior from a curvature, its record for unirank.json, and one line on how wide it is."""
    posterior = fit_posterior(hessian, scorer.head_vector().numpy())
    posterior.info = {
        "method": f"last-layer Laplace of the calibrated head{unit}, prior precision by MacKay's evidence fixed point",
        "fitted_on": fitted_on,
        "prior_precision": round(posterior.prior_precision, 6),
        "effective_parameters": round(posterior.effective_parameters, 3),
        "pairwise_reading": scorer.pairwise_reading,
    }
    spread = np.sqrt(posterior.item_variance(features))
    print(
        f"head posterior{unit}: τ = {posterior.prior_precision:.3g}, {posterior.effective_parameters:.1f} "
        f"well-determined directions; logit standard error median {np.median(spread):.3f} over {over}"
    )
    return posterior


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
