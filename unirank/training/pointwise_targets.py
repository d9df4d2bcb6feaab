"""The Thurstone fit between the stages: the training split's comparisons (and labels, as
comparisons against the anchor) into pointwise targets, with stage-1 priors where the recipe asks.

Explicit inputs (a `Scorer`, the training and held-out `GroupDataset`s, the `Calibration`
settings): called at the first pointwise epoch (`unirank.training.callbacks.PointwiseTargets`).
Math: docs/math.md, "The Thurstone fit".
"""

from __future__ import annotations

import numpy as np
import polars as pl

from unirank.fitting import anchor_comparisons, fit_score_map, fit_score_scale, fit_targets


def fit_stage_targets(scorer, train, held_out, calibration, use_prior: bool) -> tuple[pl.DataFrame, dict]:
    """(targets, summary figures). use_prior: take stage-1 scores as prior means (the schedule had
    pairwise epochs and `calibration.stage1_prior` is on). Raises if the fit does not converge, so
    no half-fitted targets reach stage 2."""
    comparisons = train.tables.comparisons.select("group_id", "item_a", "item_b", "p", "weight")
    labels = anchor_comparisons(train.tables.items, calibration.label_weight)  # steps' labels included
    comparisons = pl.concat([comparisons, labels]) if labels.height else comparisons
    anchored = labels.height > 0
    prior = stage1_prior(scorer, train, held_out or train, calibration, anchored) if use_prior else None
    targets, fit = fit_targets(comparisons, items=train.tables.items, prior=prior, link=calibration.link,
                               l2=calibration.l2)  # fmt: skip
    problem = fit.problem(f"{comparisons.height} comparisons")
    if problem:
        raise RuntimeError(
            f"Thurstone targets: {problem}; no targets were written: check the comparisons (contradictory "
            "weights?) or raise calibration.l2"
        )
    summary = {
        "fit/log_likelihood": fit.log_likelihood,
        "fit/converged": float(fit.converged),
        "fit/iterations": float(fit.iterations),
        "fit/mean_target": float(targets["target"].mean()),
        "fit/prior_groups": float(0 if prior is None else prior["group_id"].n_unique()),
    }
    print(
        f"Thurstone fit: {targets.height} items, {comparisons.height} comparisons, "
        f"log-likelihood {fit.log_likelihood:.2f}, converged={fit.converged} in {fit.iterations} Newton steps"
    )
    return targets, summary


def stage1_prior(scorer, train, held_out, calibration, anchored: bool) -> pl.DataFrame | None:
    """Prior means from the stage-1 model for the items of the groups `calibration.prior_groups`
    names (a group's size counts its items with an input of their own, not their steps).

    With anchors (absolute labels) and labels in the held-out split: μ = α·r + β, (α, β) fitted
    on the held-out comparisons and labels (`fit_score_map`), so μ sits on the anchor's scale.
    Otherwise μ = α·(r − mean of r in the group), α fitted on the held-out comparisons."""
    items = train.tables.items.select("group_id", "item_id").with_row_index("_row")
    if calibration.prior_groups == "sparse":
        sizes = items.filter(pl.Series(train.parent < 0)).group_by("group_id").len()
        sparse = sizes.filter(pl.col("len") <= calibration.sparse_group_size)["group_id"]
        items = items.filter(pl.col("group_id").is_in(sparse.implode()))
    if items.height == 0:
        return None
    held_out_scores = scorer.score_rows(
        held_out, np.arange(held_out.n_items), progress=f"stage-1 priors: scoring {held_out.n_items:,} held-out items"
    )
    alpha, beta, centred = score_map(held_out_scores, held_out, calibration, anchored)
    rows = items["_row"].to_numpy()
    scores = scorer.score_rows(train, rows, progress=f"stage-1 priors: scoring {len(rows):,} training items")
    r = pl.col("r") - pl.col("r").mean().over("group_id") if centred else pl.col("r")
    print(f"stage-1 prior for {items.height} items: latent ≈ {alpha:.3f}·r{'' if centred else f' + {beta:.3f}'}")
    scored = items.with_columns(pl.Series("r", scores)).filter(pl.col("r").is_not_nan())  # NaN: a step cut
    return scored.select("group_id", "item_id", (alpha * r + beta).alias("prior_mean"))


def score_map(scores: np.ndarray, dataset, calibration, anchored: bool) -> tuple[float, float, bool]:
    """(α, β, centred): the map from stage-1 scores (`scores`, one per item of `dataset`) to the
    latent scale, fitted on `dataset`."""
    if not len(dataset.comp_a) and not (anchored and (~np.isnan(dataset.label)).any()):
        return 0.0, 0.0, True
    labelled = ~np.isnan(dataset.label) & ~np.isnan(scores)  # NaN score: a step truncation cut
    margin = scores[dataset.comp_a] - scores[dataset.comp_b]
    if not (anchored and labelled.any()):
        return fit_score_scale(margin, dataset.p, dataset.weight, link=calibration.link), 0.0, True
    alpha, beta = fit_score_map(
        scores[dataset.comp_a], scores[dataset.comp_b], dataset.p, dataset.weight,
        scores[labelled], dataset.label[labelled],
        calibration.label_weight * dataset.label_weight[labelled], link=calibration.link,
    )  # fmt: skip
    return alpha, beta, False
