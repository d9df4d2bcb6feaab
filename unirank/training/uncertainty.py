"""Uncertainty per score from one trained model: the head posterior, fitted when training ends.

`fit_uncertainty` scores a sample of the training split once more (the final layer's inputs, the
calibrated logits and the backbone's pooled states), builds the curvature of the data's likelihood
and fits the last-layer Laplace posterior (math: `unirank.fitting.laplace`), and keeps the states as
the novelty reference (`unirank.model.novelty`). Both are saved next to an export as side files
(`head_posterior.safetensors`, `novelty_reference.safetensors`: the export stays a plain model;
unirank reads them) and in checkpoints.
"""

from __future__ import annotations

import numpy as np

from unirank.fitting.laplace import HeadPosterior, curvature, fit_posterior
from unirank.model.novelty import NoveltyReference, fit_reference, reference_from_state, reference_state
from unirank.model.posterior import posterior_from_state, posterior_state


def sample_rows(dataset, max_items: int, seed: int) -> np.ndarray:
    """Items of whole groups drawn at random until max_items: every comparison of a drawn group
    has both of its items in the sample (and every solution its steps)."""
    order = np.random.default_rng(seed).permutation(len(dataset))
    sizes = np.diff(dataset.item_offsets)[order]
    chosen = order[: max(1, int(np.searchsorted(np.cumsum(sizes), max_items, side="right")))]
    rows = [dataset.group_items[dataset.item_offsets[g] : dataset.item_offsets[g + 1]] for g in chosen]
    return np.sort(dataset.with_steps(np.concatenate(rows)))


def fit_uncertainty(
    scorer, dataset, max_items: int = 2048, seed: int = 0, block: int = 512
) -> tuple[HeadPosterior | None, NoveltyReference | None]:
    """The head posterior of a `Scorer` on (a sample of) the training split and the novelty
    reference of the same sample, from one pass; (None, None) without a split. The posterior reads
    the items whose score is one input of the final layer: a process solution, whose score
    aggregates its steps, is read through its steps (items of their own) alone."""
    if dataset is None or dataset.n_items == 0:
        return None, None
    rows = sample_rows(dataset, max_items, seed)
    label = f"head posterior and novelty reference: scoring {len(rows):,} training items"
    logits, features, states = scorer.score_rows(dataset, rows, block, states=True, progress=label)
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
