"""From the `comparisons` table to the `targets` table: every group in one sparse fit.

Items are keyed by (group_id, item_id); the comparison graph of all groups is block-diagonal, so
one fit over all of them equals independent fits per group, at the cost of one solve. Comparisons
against the virtual item `ANCHOR_ITEM` (an absolute label: a relevant document beats it, an
irrelevant one loses to it) all go to ONE shared anchor fixed at latent 0, which ties every group
to the same zero; groups without anchor comparisons are centred on their prior mean.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import polars as pl

from unirank.fitting.links import BRADLEY_TERRY, THURSTONE, get_link
from unirank.fitting.result import FitResult
from unirank.fitting.solver import fit_bradley_terry, fit_thurstone

ANCHOR_ITEM = "__anchor__"
"""The item_id of the virtual anchor item that absolute labels compare against (latent fixed at 0)."""


def fit_targets(
    comparisons: pl.DataFrame,
    *,
    items: pl.DataFrame | None = None,
    prior: pl.DataFrame | None = None,
    link: Literal["thurstone", "bradley-terry"] = "thurstone",
    l2: float = 1.0,
    tol: float = 1e-8,
) -> tuple[pl.DataFrame, FitResult]:
    """Fit latents to a comparisons table and return (targets table, fit result).

    comparisons: columns group_id, item_a, item_b (strings), p in [0, 1], weight > 0 (p and weight
        default to 1 when absent). item_a/item_b may be ANCHOR_ITEM.
    items: optional table with group_id, item_id: items listed here but never compared get a row
        too (at their prior, with the prior's standard error).
    prior: optional table group_id, item_id, prior_mean: μ per item (default 0).
    Returns targets with group_id, item_id, latent, std_err and target = F(latent) (F = Φ for
    Thurstone, σ for Bradley-Terry): the probability that the item beats the anchor, or, without
    anchors, the average item of its group. Rows come in order of first appearance.
    """
    fits = {"thurstone": (fit_thurstone, THURSTONE), "bradley-terry": (fit_bradley_terry, BRADLEY_TERRY)}
    if link not in fits:
        raise ValueError(f"link must be one of {sorted(fits)}, got {link!r}")
    fit, link_fn = fits[link]
    comparisons = _with_defaults(comparisons)
    keys = _item_keys(comparisons, items)
    n_items = keys.height
    indexed = (
        comparisons.with_row_index("_row")
        .join(_lookup(keys, "item_a"), on=["group_id", "item_a"], how="left")
        .join(_lookup(keys, "item_b"), on=["group_id", "item_b"], how="left")
        .sort("_row")
    )
    anchor_used = bool((comparisons["item_a"] == ANCHOR_ITEM).any() or (comparisons["item_b"] == ANCHOR_ITEM).any())
    anchor_index = n_items if anchor_used else None
    idx_a = indexed["_idx_item_a"].fill_null(n_items).to_numpy()
    idx_b = indexed["_idx_item_b"].fill_null(n_items).to_numpy()
    result = fit(
        idx_a,
        idx_b,
        indexed["p"].to_numpy(),
        indexed["weight"].to_numpy(),
        n_items=n_items + int(anchor_used),
        l2=l2,
        prior_mean=_prior_means(keys, prior, anchor_used),
        anchor=anchor_index,
        tol=tol,
    )
    latent = result.latent[:n_items]
    targets = keys.select(
        "group_id",
        "item_id",
        pl.Series("latent", latent),
        pl.Series("std_err", result.std_err[:n_items]),
        pl.Series("target", link_fn.cdf(latent)),
    )
    return targets, result


def _with_defaults(comparisons: pl.DataFrame) -> pl.DataFrame:
    missing = [c for c in ("group_id", "item_a", "item_b") if c not in comparisons.columns]
    if missing:
        raise ValueError(f"comparisons table is missing column(s) {missing}; it has {comparisons.columns}")
    for column in ("group_id", "item_a", "item_b"):
        nulls = comparisons[column].is_null()
        if nulls.any():
            raise ValueError(f"comparison row {nulls.arg_true()[0]}: {column} is missing (null)")
    defaults = [pl.lit(1.0).alias(c) for c in ("p", "weight") if c not in comparisons.columns]
    try:
        return comparisons.with_columns(defaults).select(
            pl.col("group_id").cast(pl.String),
            pl.col("item_a").cast(pl.String),
            pl.col("item_b").cast(pl.String),
            pl.col("p").cast(pl.Float64),
            pl.col("weight").cast(pl.Float64),
        )
    except pl.exceptions.PolarsError as error:
        raise ValueError(f"comparisons table has a column of the wrong type: {error}") from error


def _item_keys(comparisons: pl.DataFrame, items: pl.DataFrame | None) -> pl.DataFrame:
    """Distinct (group_id, item_id) of the real items, in order of first appearance (items table first)."""
    pairs = comparisons.select("group_id", pl.concat_list(pl.col("item_a"), pl.col("item_b")).alias("item_id")).explode(
        "item_id"
    )
    frames = [pairs]
    if items is not None:
        frames.insert(0, items.select(pl.col("group_id").cast(pl.String), pl.col("item_id").cast(pl.String)))
    keys = pl.concat(frames).filter(pl.col("item_id") != ANCHOR_ITEM).unique(maintain_order=True)
    return keys.with_row_index("_idx").with_columns(pl.col("_idx").cast(pl.Int64))


def _lookup(keys: pl.DataFrame, column: str) -> pl.DataFrame:
    return keys.select("group_id", pl.col("item_id").alias(column), pl.col("_idx").alias(f"_idx_{column}"))


def _prior_means(keys: pl.DataFrame, prior: pl.DataFrame | None, anchor_used: bool) -> np.ndarray | None:
    if prior is None:
        return None
    if "prior_mean" not in prior.columns:
        raise ValueError(f"prior table needs columns group_id, item_id, prior_mean; it has {prior.columns}")
    if prior.select("group_id", "item_id").is_duplicated().any():
        raise ValueError("prior table lists an item twice (duplicate group_id, item_id)")
    joined = keys.join(
        prior.select(pl.col("group_id").cast(pl.String), pl.col("item_id").cast(pl.String), "prior_mean"),
        on=["group_id", "item_id"],
        how="left",
    ).sort("_idx")
    means = joined["prior_mean"].fill_null(0.0).cast(pl.Float64).to_numpy()
    return np.append(means, 0.0) if anchor_used else means


def anchor_comparisons(items: pl.DataFrame, weight: float = 1.0) -> pl.DataFrame:
    """Absolute labels as comparisons against the anchor: item ≻ anchor with p = label.

    A relevant item (label 1) beats the anchor, an irrelevant one (label 0) loses to it, a graded
    label in between is a soft preference. Items with a null label contribute nothing. The weight
    is `weight` × the item's `label_weight` column where the items have one (mining gives an
    unjudged candidate a lower one than a judged candidate).
    """
    labelled = items.filter(pl.col("label").is_not_null())
    item_weight = pl.col("label_weight").cast(pl.Float64) if "label_weight" in items.columns else pl.lit(1.0)
    return labelled.select(
        pl.col("group_id").cast(pl.String),
        pl.col("item_id").cast(pl.String).alias("item_a"),
        pl.lit(ANCHOR_ITEM).alias("item_b"),
        pl.col("label").cast(pl.Float64).alias("p"),
        (float(weight) * item_weight).alias("weight"),
    )


def fit_score_scale(
    score_diff: np.ndarray,
    p: np.ndarray,
    weight: np.ndarray | None = None,
    link: Literal["thurstone", "bradley-terry"] = "thurstone",
) -> float:
    """α ≥ 0 maximising Σ w [p log F(α·Δr) + (1 − p) log F(−α·Δr)]: the factor that puts a model's
    score differences Δr = r_a − r_b on the fitted latent scale (used to turn stage-1 scores into
    prior means for sparse groups). Returns 0 when the scores carry no signal."""
    from scipy import optimize

    log_cdf = get_link(link).log_cdf
    w = np.ones_like(p) if weight is None else weight

    def neg_log_likelihood(alpha: float) -> float:
        d = alpha * score_diff
        return -float(np.sum(w * (p * log_cdf(d) + (1 - p) * log_cdf(-d))))

    if len(score_diff) == 0:
        return 0.0
    return float(optimize.minimize_scalar(neg_log_likelihood, bounds=(0.0, 50.0), method="bounded").x)


def fit_score_map(
    score_a: np.ndarray,
    score_b: np.ndarray,
    p: np.ndarray,
    weight: np.ndarray,
    label_score: np.ndarray,
    label: np.ndarray,
    label_weight: np.ndarray,
    link: Literal["thurstone", "bradley-terry"] = "thurstone",
) -> tuple[float, float]:
    """(α ≥ 0, β) putting a model's scores r on the latent scale of a fit with an anchor at 0:
    latent ≈ α·r + β. Maximises, over held-out evidence,
        Σ w [p log F(α(r_a − r_b)) + (1 − p) log F(−α(r_a − r_b))]           (comparisons)
      + Σ v [y log F(α r + β) + (1 − y) log F(−(α r + β))]                  (labels vs the anchor)
    with F = Φ (Thurstone) or σ. Labels are needed for β; without them β = 0."""
    from scipy import optimize

    log_cdf = get_link(link).log_cdf
    if len(label_score) == 0:
        return fit_score_scale(score_a - score_b, p, weight, link), 0.0

    def neg_log_likelihood(params: np.ndarray) -> float:
        alpha, beta = params
        d = alpha * (score_a - score_b)
        e = alpha * label_score + beta
        pairs = np.sum(weight * (p * log_cdf(d) + (1 - p) * log_cdf(-d)))
        labels = np.sum(label_weight * (label * log_cdf(e) + (1 - label) * log_cdf(-e)))
        return -float(pairs + labels)

    result = optimize.minimize(neg_log_likelihood, np.array([1.0, 0.0]), method="L-BFGS-B",
                               bounds=[(0.0, 50.0), (-50.0, 50.0)])  # fmt: skip
    return float(result.x[0]), float(result.x[1])
