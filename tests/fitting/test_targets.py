"""fit_targets: the comparisons table → targets table, every group in one fit."""

import numpy as np
import polars as pl
import pytest
from scipy import stats

from unirank.cli import main
from unirank.fitting import ANCHOR_ITEM, fit_targets, fit_thurstone


def comparisons():
    return pl.DataFrame(
        {
            "group_id": ["q1", "q1", "q1", "q2", "q2"],
            "item_a": ["d1", "d2", "d1", "x", "y"],
            "item_b": ["d2", "d3", "d3", "y", "z"],
            "p": [1.0, 0.75, 0.9, 0.5, 0.0],
            "weight": [1.0, 2.0, 1.0, 3.0, 1.0],
        }
    )


def test_one_fit_equals_independent_fits_per_group():
    targets, fit = fit_targets(comparisons(), l2=0.5, tol=1e-12)
    assert fit.converged
    assert targets.columns == ["group_id", "item_id", "latent", "std_err", "target"]
    q1 = fit_thurstone([0, 1, 0], [1, 2, 2], [1.0, 0.75, 0.9], [1.0, 2.0, 1.0], l2=0.5, tol=1e-12)
    q2 = fit_thurstone([0, 1], [1, 2], [0.5, 0.0], [3.0, 1.0], l2=0.5, tol=1e-12)
    np.testing.assert_allclose(targets["latent"].to_numpy(), np.concatenate([q1.latent, q2.latent]), atol=1e-9)
    np.testing.assert_allclose(targets["target"].to_numpy(), stats.norm.cdf(targets["latent"].to_numpy()))
    assert targets["item_id"].to_list() == ["d1", "d2", "d3", "x", "y", "z"]


def test_absolute_labels_share_one_anchor_at_zero():
    table = pl.DataFrame(
        {
            "group_id": ["q1", "q1", "q2", "q2"],
            "item_a": ["rel", ANCHOR_ITEM, "rel", "d"],
            "item_b": [ANCHOR_ITEM, "irr", ANCHOR_ITEM, "rel"],
            "p": [1.0, 1.0, 1.0, 0.5],
            "weight": [1.0, 1.0, 1.0, 1.0],
        }
    )
    targets, _ = fit_targets(table)
    by_item = {(g, i): t for g, i, t in targets.select("group_id", "item_id", "target").iter_rows()}
    assert by_item[("q1", "rel")] > 0.5 > by_item[("q1", "irr")]
    assert by_item[("q1", "rel")] == pytest.approx(by_item[("q2", "rel")], abs=0.05)
    assert ANCHOR_ITEM not in targets["item_id"].to_list()


def test_items_never_compared_get_their_prior():
    items = pl.DataFrame({"group_id": ["q1", "q9"], "item_id": ["d1", "lonely"]})
    prior = pl.DataFrame({"group_id": ["q9"], "item_id": ["lonely"], "prior_mean": [0.8]})
    targets, _ = fit_targets(comparisons(), items=items, prior=prior, l2=4.0)
    lonely = targets.filter(pl.col("item_id") == "lonely").row(0, named=True)
    assert lonely["latent"] == pytest.approx(0.8)
    assert lonely["std_err"] == pytest.approx(0.5)


def test_bad_tables_fail_clearly():
    with pytest.raises(ValueError, match=r"missing column\(s\) \['item_b'\]"):
        fit_targets(comparisons().drop("item_b"))
    with pytest.raises(ValueError, match="comparison row 2: p=1.5"):
        fit_targets(comparisons().with_columns(pl.Series("p", [1.0, 0.5, 1.5, 0.5, 0.5])))
    with pytest.raises(ValueError, match="comparison row 1: item_a is missing"):
        fit_targets(comparisons().with_columns(pl.Series("item_a", ["d1", None, "d1", "x", "y"])))
    with pytest.raises(ValueError, match="comparison row 4: item .* compared with itself"):
        fit_targets(comparisons().with_columns(pl.Series("item_b", ["d2", "d3", "d3", "y", "y"])))


def test_targets_command_writes_targets(tmp_path, capsys):
    comparisons().write_parquet(tmp_path / "comparisons.parquet")
    main(["targets", "--comparisons", str(tmp_path / "comparisons.parquet"), "--out", str(tmp_path / "t.parquet")])
    targets = pl.read_parquet(tmp_path / "t.parquet")
    assert targets.height == 6 and '"converged": true' in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_targets_command_names_the_file_on_bad_input(tmp_path):
    bad = tmp_path / "bad.parquet"
    comparisons().with_columns(pl.lit(-1.0).alias("weight")).write_parquet(bad)
    with pytest.raises(SystemExit, match=r"bad.parquet, row 0: weight=-1.0 is not a finite number"):
        main(["targets", "--comparisons", str(bad), "--out", str(tmp_path / "t.parquet")])
    assert not (tmp_path / "t.parquet").exists()
