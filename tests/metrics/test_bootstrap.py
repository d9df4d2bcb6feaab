"""Bootstrap intervals over groups cover the true value at about their level."""

import numpy as np
import pytest

from unirank.metrics.bootstrap import grouped_interval, mean_interval, paired_difference
from unirank.metrics.calibration import calibration_error, calibration_metrics


def test_mean_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        sample = rng.normal(0.6, 0.2, 150)
        low, high = mean_interval(sample, resamples=400, seed=trial)
        covered += low <= 0.6 <= high
    assert 0.9 <= covered / 200 <= 0.99


def test_grouped_interval_resamples_whole_groups():
    rng = np.random.default_rng(1)
    group = np.repeat(np.arange(50), 20)
    offsets = rng.normal(0, 1, 50)[group]  # values within a group move together
    values = offsets + rng.normal(0, 0.1, group.size)
    (low, high), n = grouped_interval(lambda rows: float(values[rows].mean()), group, resamples=400)
    naive_low, naive_high = mean_interval(values, resamples=400)
    assert n == 50
    assert (high - low) > 3 * (naive_high - naive_low)  # rows of a group are not independent samples


def test_the_one_ece_is_torchmetrics_binary_calibration_error_and_handles_soft_labels():
    import torch
    from torchmetrics.functional.classification import binary_calibration_error

    rng = np.random.default_rng(2)
    prob = rng.random(3000)
    label = (rng.random(3000) < prob**1.5).astype(float)
    reference = float(binary_calibration_error(torch.tensor(prob), torch.tensor(label).long(), n_bins=15))
    assert calibration_error(prob, label) == pytest.approx(reference, abs=1e-6)
    assert calibration_metrics(prob, label)["ece"] == calibration_error(prob, label)
    # soft labels: Σ_b n_b/N |mean p_b − mean y_b|, by hand for two bins
    assert calibration_error([0.1, 0.1, 0.9], [0.3, 0.5, 0.6]) == pytest.approx((2 * 0.3 + 0.3) / 3)


def test_paired_difference_sees_a_small_consistent_gain_that_unpaired_intervals_miss():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.2, 0.9, 300)  # queries differ a lot from each other
    better = {q: v + 0.01 for q, v in enumerate(base)}  # the same small gain on every query
    worse = dict(enumerate(base))
    low, high = mean_interval(base)
    assert high - low > 0.04  # unpaired: the gain is inside either system's interval
    paired = paired_difference(better, worse)
    assert paired["difference"] == pytest.approx(0.01)
    assert paired["interval"][0] > 0.0 and paired["n_groups"] == 300


def test_paired_difference_pools_ratios_and_covers_zero_without_a_difference():
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 8, 200)
    a = {g: [float(rng.binomial(c, 0.6)), int(c)] for g, c in enumerate(counts)}
    b = {g: [float(rng.binomial(c, 0.6)), int(c)] for g, c in enumerate(counts)}
    paired = paired_difference(a, b)
    expected = (sum(v[0] for v in a.values()) - sum(v[0] for v in b.values())) / counts.sum()
    assert paired["difference"] == pytest.approx(expected)
    assert paired["interval"][0] < 0.0 < paired["interval"][1]
    with pytest.raises(ValueError, match="different units"):
        paired_difference(a, {g: [v[0], v[1] + 1] for g, v in b.items()})


def test_reports_keep_per_prompt_counts_that_reproduce_the_accuracy_and_pair_up(tmp_path):
    from unirank.domains.chat.evaluation import evaluate_preferences
    from unirank.domains.chat.readers import read_preferences

    path = tmp_path / "p.jsonl"
    rows = [f'{{"prompt": "p{i % 5}", "chosen": "good {i}", "rejected": "bad {i}"}}' for i in range(20)]
    path.write_text("\n".join(rows) + "\n")
    tables = read_preferences(path)

    class ByWord:  # right on every pair ("good" > "bad"), or wrong on the prompts p0 and p1
        def __init__(self, wrong_prompts):
            self.wrong, self.pairwise_link = wrong_prompts, "bradley-terry"

        def score_texts(self, contexts, candidates):
            sign = np.array([-1.0 if any(w in str(c) for w in self.wrong) else 1.0 for c in contexts])
            return sign * np.array([1.0 if t.startswith("good") else -1.0 for t in candidates])

    report = evaluate_preferences({"right": ByWord(()), "half": ByWord(("p0", "p1"))}, tables)
    right, half = report["systems"]["right"], report["systems"]["half"]
    counts = half["per_group"]["accuracy"]
    assert sum(c for c, _ in counts.values()) / sum(n for _, n in counts.values()) == half["accuracy"] == 0.6
    paired = paired_difference(right["per_group"]["accuracy"], counts)
    assert paired["difference"] == pytest.approx(0.4) and paired["n_groups"] == 5
    # margins ±2: P = σ(2) ≈ 0.88 on the chosen side; "right" is right on all of them, "half" on 60 %
    rows = {r["threshold"]: r for r in right["thresholds"]}
    assert rows[0.5]["predicted_positive"] == 20 and rows[0.5]["precision"] == 1.0
    assert rows[0.9]["predicted_positive"] == 0 and rows[0.9]["precision"] is None
    assert {r["threshold"]: r for r in half["thresholds"]}[0.7]["precision"] == pytest.approx(0.6)


def test_a_calibrated_models_ece_on_a_small_sample_is_read_against_what_calibration_itself_gives():
    from unirank.metrics.bootstrap import calibrated_ece_reference
    from unirank.metrics.calibration import calibration_error

    rng = np.random.default_rng(3)
    prob = rng.uniform(0.2, 0.8, 200)
    label = (rng.uniform(0, 1, 200) < prob).astype(float)  # calibrated by construction
    observed = calibration_error(prob, label)
    reference = calibrated_ece_reference(prob, observed)
    low, high = reference["interval"]
    assert 0.02 < reference["mean"] < 0.12 and low <= observed <= high and reference["p_value"] > 0.05
    overconfident = np.clip(prob + np.sign(prob - 0.5) * 0.15, 0, 1)  # same labels, pushed away from 0.5
    worse = calibrated_ece_reference(overconfident, calibration_error(overconfident, label))
    assert worse["p_value"] < 0.05
    more = calibrated_ece_reference(prob, observed, trials=3)  # three judgments per label: less noise
    assert more["mean"] < reference["mean"]
