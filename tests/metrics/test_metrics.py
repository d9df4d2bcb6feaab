"""Evaluation metrics against trec_eval, torchmetrics and hand-made cases; the evaluate command."""

import json

import numpy as np
import pytest

from unirank.adapters import ChatAdapter, RetrievalAdapter
from unirank.cli import main
from unirank.metrics import (
    calibration_metrics,
    pairwise_accuracy,
    pairwise_calibration,
    pairwise_probability,
    retrieval_metrics,
    threshold_report,
)
from unirank.module import UnirankModule
from unirank.training.export import export_model

QRELS = {"q1": {"d1": 2, "d2": 1, "d9": 1}, "q2": {"d4": 1}, "q3": {"d7": 3, "d8": 0}}
RUN = {
    "q1": {"d1": 0.2, "d2": 0.9, "d3": 0.5, "d5": 0.1},
    "q2": {"d4": 0.3, "d6": 0.8, "d3": 0.4},
    "q3": {"d8": 0.9, "d7": 0.1},
}


def test_retrieval_metrics_equal_trec_eval():
    import pytrec_eval

    ours = retrieval_metrics(RUN, QRELS, k=10)
    per_query = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10", "recall.100", "map", "recip_rank"}).evaluate(RUN)
    for ours_name, trec_name in [
        ("ndcg@10", "ndcg_cut_10"),
        ("recall@100", "recall_100"),
        ("map", "map"),
        ("mrr@10", "recip_rank"),
    ]:  # every first relevant hit is within the top 10 here
        assert ours[ours_name] == pytest.approx(np.mean([q[trec_name] for q in per_query.values()]), abs=1e-12)
    assert 0 < ours["ndcg@10"] < 1


def test_retrieval_metrics_reject_bad_runs():
    with pytest.raises(ValueError, match="query 'q1', document 'd2': score nan"):
        retrieval_metrics({"q1": {"d2": float("nan")}}, QRELS)
    with pytest.raises(ValueError, match="the run names query 'zz'"):
        retrieval_metrics({"zz": {"d1": 1.0}}, QRELS)


def test_ece_is_zero_when_calibrated_and_large_when_overconfident():
    prob = np.repeat([0.1, 0.3, 0.5, 0.7, 0.9], 10)
    label = np.concatenate([np.arange(10) < k for k in (1, 3, 5, 7, 9)]).astype(float)
    calibrated = calibration_metrics(prob, label)
    assert calibrated["ece"] == pytest.approx(0.0, abs=1e-6)
    overconfident = calibration_metrics(np.full(100, 0.99), np.arange(100) % 2)
    assert overconfident["ece"] == pytest.approx(0.49, abs=1e-6) and overconfident["brier"] > 0.45
    assert calibrated["brier"] < overconfident["brier"] and calibrated["nll"] < overconfident["nll"]


def test_soft_label_ece_uses_the_same_binning_as_torchmetrics():
    rng = np.random.default_rng(0)
    prob = rng.random(400)
    hard = (rng.random(400) < prob).astype(float)
    torchmetrics_ece = calibration_metrics(prob, hard)["ece"]
    ours = sum(
        r["count"] / 400 * abs(r["mean_prob"] - r["mean_label"])
        for r in calibration_metrics(prob, hard)["reliability"]
        if r["count"]
    )
    assert torchmetrics_ece == pytest.approx(ours, abs=1e-6)
    soft = calibration_metrics(np.full(3, 0.6), [2 / 3, 2 / 3, 1 / 3])  # annotator fractions
    assert soft["ece"] == pytest.approx(abs(0.6 - 5 / 9))


def test_pairwise_accuracy_counts_ties_as_wrong_and_weights_sections_by_prompts():
    report = pairwise_accuracy(
        [2.0, 1.0, 0.5, 3.0],
        [1.0, 1.0, 0.7, 0.0],
        category=["a", "a", "b", "b"],
        sections={"all": ["a", "b"], "only_b": ["b"]},
    )
    assert report["accuracy"] == 0.5 and report["ties"] == 1
    assert report["per_category"] == {"a": {"accuracy": 0.5, "n": 2}, "b": {"accuracy": 0.5, "n": 2}}
    assert report["sections"] == {"all": 0.5, "only_b": 0.5}
    uneven = pairwise_accuracy([1, 1, 1, 0], [0, 0, 0, 1], category=["a", "a", "a", "b"], sections={"s": ["a", "b"]})
    assert uneven["sections"]["s"] == pytest.approx(0.75)  # prompt-weighted, not the mean of 1.0 and 0.0
    with pytest.raises(ValueError, match="pair 1: a score is NaN"):
        pairwise_accuracy([1.0, np.nan], [0.0, 0.0])


def test_pairwise_probability_links():
    assert pairwise_probability([2.0], [0.0])[0] == pytest.approx(1 / (1 + np.exp(-2)))
    # thurstone reading: σ(r) = Φ(s) → P = Φ(s_a − s_b); equal logits are a coin flip
    assert pairwise_probability([0.3], [0.3], link="thurstone")[0] == pytest.approx(0.5)
    report = pairwise_calibration([0.0, 0.0], [0.0, 0.0], [0.5, 0.5])
    assert report["ece"] == pytest.approx(0.0)


def test_pairwise_calibration_does_not_depend_on_which_side_is_listed_first():
    # a model right 70 % of the time that says 0.7 is calibrated, though every label says "a won"
    rng = np.random.default_rng(0)
    margin = np.log(0.7 / 0.3)
    a_won = rng.random(4000) < 0.7
    chosen_first = pairwise_calibration(np.where(a_won, margin, 0.0), np.where(a_won, 0.0, margin), np.ones(4000))
    swapped = pairwise_calibration(np.where(a_won, 0.0, margin), np.where(a_won, margin, 0.0), np.zeros(4000))
    assert chosen_first["ece"] == pytest.approx(swapped["ece"]) and chosen_first["ece"] < 0.02
    assert chosen_first["brier"] == pytest.approx(0.21, abs=0.01)


def test_threshold_report_measures_precision_spread_across_groups():
    prob = [0.9, 0.8, 0.2, 0.9, 0.6, 0.1]
    label = [1, 1, 0, 0, 1, 0]
    group = ["q1", "q1", "q1", "q2", "q2", "q2"]
    [row] = threshold_report(prob, label, group, thresholds=[0.5])
    assert row["precision"] == pytest.approx(3 / 4) and row["recall"] == 1.0
    assert row["group_precision_std"] == pytest.approx(np.std([1.0, 0.5]))


def test_threshold_precision_interval_resamples_whole_groups():
    """100 queries, 10 candidates above t each, half of them relevant overall: spread evenly (every
    query 5 of 10) no resample moves the precision; clustered (half the queries all relevant, half
    none) the interval is as wide as drawing 100 queries makes it (±1.96·0.5/√100 ≈ ±0.10)."""
    group = np.repeat(np.arange(100), 10)
    prob = np.full(1000, 0.8)
    even = np.tile([1, 0], 500)
    clustered = np.repeat(np.arange(100) % 2, 10)
    [spread_evenly] = threshold_report(prob, even, group, thresholds=[0.5])
    [clustered_row] = threshold_report(prob, clustered, group, thresholds=[0.5])
    assert spread_evenly["precision"] == clustered_row["precision"] == 0.5
    assert spread_evenly["precision_interval"] == pytest.approx([0.5, 0.5])
    low, high = clustered_row["precision_interval"]
    assert 0.38 < low < 0.44 and 0.56 < high < 0.62
    [none_above] = threshold_report(prob, even, group, thresholds=[0.9])
    assert none_above["precision"] is None and none_above["precision_interval"] is None


@pytest.mark.parametrize("domain", ["retrieval", "chat"])
def test_evaluate_command_writes_a_report_with_a_comparison(repo, tmp_path, domain):
    from unirank.model.novelty import fit_reference

    adapter = RetrievalAdapter(max_length=64) if domain == "retrieval" else ChatAdapter(max_length=64)
    first = UnirankModule(model="tiny", adapter=adapter, seed=0)
    contexts = ["what do cells need", "how far is the moon", "why is the sky blue"]
    encoded = first.scorer.encode(contexts, ["energy and water", "about 384,000 km", "Rayleigh scattering"])
    first.scorer.novelty = fit_reference(first.scorer.score_encoded_with_features(encoded, states=True)[2], contexts)
    first.scorer.final_calibration = {"a": 1.0, "b": 0.0, "fusion": {"first_stage_weight": 0.5}}  # γ > 0
    export_model(first, tmp_path / "a")  # with a novelty reference, so evaluate reads the shift
    export_model(UnirankModule(model="tiny", adapter=adapter, seed=1), tmp_path / "b")
    data = (
        ["--beir", str(repo / "data/demo-beir"), "--first_stage.k", "10"]
        + ["--first_stage.cache_dir", str(tmp_path / "cache")]
        if domain == "retrieval"
        else ["--preferences", str(repo / "data/demo-preferences.jsonl"), "--split", "all"]
    )
    main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "a"),
            "--compare",
            str(tmp_path / "b"),
            *data,
            "--out",
            str(tmp_path / "report"),
        ]
    )
    metrics = json.loads((tmp_path / "report/metrics.json").read_text())
    assert set(metrics["systems"]) >= {"a", "b"}
    shift = metrics["systems"]["a"]["shift"]
    assert (
        shift["inputs"] == (metrics["candidates"] if domain == "retrieval" else 72)
        and "shift" not in metrics["systems"]["b"]
    )
    assert (
        0.0 <= shift["unfamiliar_share"] <= 1.0
        and "of the training inputs" in (tmp_path / "report/summary.txt").read_text()
    )
    assert (tmp_path / "report/reliability.png").read_bytes()[:4] == b"\x89PNG"
    if domain == "retrieval":
        assert "first stage" in metrics["systems"] and "calibration" in metrics["systems"]["a"]
        assert metrics["headline"] == {"a": "a + first stage", "b": "b"}  # fused where validation chose γ > 0
        assert "a: ranked by 'a + first stage'" in (tmp_path / "report/summary.txt").read_text()
    else:
        assert metrics["systems"]["a"]["n"] == 36 and (tmp_path / "report/per_category.csv").exists()
