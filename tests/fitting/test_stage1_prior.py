"""Targets keep the stage-1 order where labels are silent, and labels move them where they speak."""

import numpy as np
import polars as pl
from scipy import stats

from unirank.fitting import anchor_comparisons, fit_targets


def test_without_labels_the_targets_follow_the_stage1_order():
    rng = np.random.default_rng(0)
    items = pl.DataFrame({"group_id": ["q"] * 30, "item_id": [f"d{i}" for i in range(30)]})
    prior = items.with_columns(pl.Series("prior_mean", rng.normal(0, 1, 30)))
    no_comparisons = pl.DataFrame(schema={"group_id": pl.String, "item_a": pl.String, "item_b": pl.String})
    targets, _ = fit_targets(no_comparisons, items=items, prior=prior)
    joined = targets.join(prior, on=["group_id", "item_id"])
    assert stats.spearmanr(joined["target"], joined["prior_mean"]).statistic == 1.0


def test_labels_with_weights_move_the_targets_where_they_speak():
    items = pl.DataFrame(
        {
            "group_id": ["q"] * 4,
            "item_id": ["pos", "a", "b", "c"],
            "label": [1.0, 0.0, 0.0, 0.0],
            "label_weight": [1.0, 0.1, 0.1, 0.1],  # the three are unjudged
        }
    )
    prior = items.select("group_id", "item_id", pl.Series("prior_mean", [-0.5, 0.8, 0.2, -0.4]))
    anchors = anchor_comparisons(items, weight=30.0)
    assert anchors["weight"].to_list() == [30.0, 3.0, 3.0, 3.0]
    targets, _ = fit_targets(anchors, items=items, prior=prior)
    t = dict(zip(targets["item_id"], targets["target"]))
    assert t["pos"] > 0.9  # the judged positive, whatever its prior
    assert t["a"] > t["b"] > t["c"]  # unjudged: pushed down, in the stage-1 order
    assert t["a"] < 0.5
