"""RewardBench and RewardBench 2 scores from rows in those sets' formats, checked against the official
weighting and the Ties formula computed by hand; the command reports them with intervals."""

import json
import math

import numpy as np
import pytest
from scipy import stats

from unirank.data.tables import TableError
from unirank.domains.chat import rewardbench as rb


class ByLength:
    """A stand-in reward model whose logit is the response's length: rows can be built right or wrong."""

    pairwise_link = "bradley-terry"

    def score_texts(self, contexts, texts):
        return np.array([float(len(t)) for t in texts])


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


V1 = [
    {"prompt": "p1", "chosen": "long answer", "rejected": "short", "subset": "alpacaeval-easy"},
    {"prompt": "p2", "chosen": "no", "rejected": "a longer one", "subset": "alpacaeval-easy"},
    {"prompt": "p3", "chosen": "right answer", "rejected": "wrong", "subset": "mt-bench-easy"},
    {"prompt": "p4", "chosen": "proof by steps", "rejected": "guess", "subset": "math-prm"},
    {"prompt": "p5", "chosen": "x", "rejected": "yy", "subset": "hep-python"},
]


def test_rewardbench_sections_weight_subsets_by_the_official_counts(tmp_path):
    report = rb.rewardbench_report(ByLength(), rb.read_rows(write(tmp_path / "rb.jsonl", V1), 1), 1)
    chat = (100 * 0.5 + 28 * 1.0) / 128
    reasoning = (984 * 1.0 + 164 * 0.0) / (984 + 164)  # math-prm weighs as much as the code subsets
    assert report["scores"]["Chat"] == pytest.approx(chat)
    assert report["scores"]["Reasoning"] == pytest.approx(reasoning)
    assert report["scores"]["score"] == pytest.approx((chat + reasoning) / 2)
    assert set(report["intervals"]) == set(report["scores"]) and report["pairs"] == 5


def test_rewardbench2_best_of_n_credit_and_the_ties_formula(tmp_path):
    rows = [
        {"prompt": "a", "chosen": ["best!"], "rejected": ["no", "nah", "nope"], "subset": "Focus", "id": "1"},
        {"prompt": "b", "chosen": ["tie"], "rejected": ["abc", "x", "y"], "subset": "Focus", "id": "2"},  # 2 at the top
        {"prompt": "c", "chosen": ["a"], "rejected": ["bb", "x", "y"], "subset": "Math", "id": "3"},
        {"prompt": "q", "chosen": ["correct"], "rejected": ["no", "bad"], "subset": "Ties", "id": "ref:7"},
        {"prompt": "q2", "chosen": ["right one", "right"], "rejected": ["abc", "wr"], "subset": "Ties", "id": "tied:7"},
    ]
    report = rb.rewardbench_report(ByLength(), rb.read_rows(write(tmp_path / "rb2.jsonl", rows), 2), 2)
    # Ties by hand: ref margin 7 - 3 = 4 (accurate); tied: correct 9, 5 (spread 4), margin 5 - 3 = 2 (accurate)
    margin_both = min(4, 2)
    ties = 0.30 + 0.30 + 0.20 * (2 > 4) + 0.20 * (margin_both > 4) + 0.01 * math.tanh(margin_both / 4 - 1)
    assert report["scores"]["Focus"] == pytest.approx((1.0 + 0.5) / 2)
    assert report["scores"]["Math"] == 0.0 and report["scores"]["Ties"] == pytest.approx(ties)
    assert report["scores"]["score"] == pytest.approx((0.75 + 0.0 + ties) / 3)
    assert report["best_of_n_rows"] == 4 and 0 <= report["best_of_n_ece"] <= 1


def test_the_thurstone_best_of_two_is_the_pairwise_probability():
    logits = np.array([1.3, -0.4])
    latent = stats.norm.ppf(1 / (1 + np.exp(-logits)))
    best = rb.probability_best(logits, "thurstone")
    assert best[0] == pytest.approx(stats.norm.cdf(latent[0] - latent[1]), abs=1e-6)
    assert rb.probability_best(np.array([0.0, 0.0, 0.0, 0.0]), "thurstone") == pytest.approx([0.25] * 4)


@pytest.mark.parametrize(
    ("row", "version", "message"),
    [
        ({"prompt": "p", "chosen": "a", "subset": "x"}, 1, r"line 1: missing field 'rejected'"),
        ({"prompt": "p", "chosen": ["a"], "rejected": "b", "subset": "x"}, 2, r"'rejected' must be a non-empty list"),
        (
            {"prompt": "p", "chosen": ["a"], "rejected": ["b"], "subset": "Ties", "id": "7"},
            2,
            r"'ref:<n>' or 'tied:<n>'",
        ),
        ({"prompt": "p", "chosen": 3, "rejected": "b", "subset": "x"}, 1, r"'chosen' must hold strings"),
    ],
)
def test_bad_rows_are_named_by_line(tmp_path, row, version, message):
    with pytest.raises(TableError, match=message):
        rb.read_rows(write(tmp_path / "rows.jsonl", [row]), version)


def test_a_duplicate_id_is_refused_naming_both_lines(tmp_path):
    """RewardBench 2's Ties rows with one id replaced each other in the formula."""
    rows = [{"prompt": "p", "chosen": ["a"], "rejected": ["b"], "subset": "Ties", "id": "ref:1"}] * 2
    with pytest.raises(TableError, match=r"line 2: duplicate id 'ref:1' \(first at line 1\)"):
        rb.read_rows(write(tmp_path / "rows.jsonl", rows), 2)


def test_subsets_outside_the_official_list_are_scored_under_their_own_names(tmp_path):
    """They were left out of every section silently (and, alone, ended in a bootstrap ValueError)."""
    rows = V1 + [{"prompt": "p6", "chosen": "a long one", "rejected": "b", "subset": "my-own-set"}]
    report = rb.rewardbench_report(ByLength(), rb.read_rows(write(tmp_path / "rb.jsonl", rows), 1), 1)
    assert report["scores"]["my-own-set"] == 1.0 and report["outside_official"] == ["my-own-set"]
    assert report["scores"]["score"] == pytest.approx((report["scores"]["Chat"] + report["scores"]["Reasoning"]) / 2)
    assert any("my-own-set: not among RewardBench's subsets" in line for line in rb.summary_lines(report))
    alone = rb.rewardbench_report(ByLength(), rb.read_rows(write(tmp_path / "own.jsonl", rows[-1:]), 1), 1)
    assert alone["scores"] == {"my-own-set": 1.0} and set(alone["intervals"]) == {"my-own-set"}


def test_evaluate_reports_rewardbench_for_a_reward_model(tmp_path, capsys):
    from unirank.adapters import ChatAdapter
    from unirank.cli import main
    from unirank.module import UnirankModule
    from unirank.training.export import export_model

    model = export_model(UnirankModule(model="tiny", adapter=ChatAdapter(max_length=32)), tmp_path / "model")
    main(["evaluate", "--model", str(model), "--rewardbench", str(write(tmp_path / "rb.jsonl", V1)),
          "--out", str(tmp_path / "report")])  # fmt: skip
    report = json.loads((tmp_path / "report/metrics.json").read_text())["model"]
    assert set(report["scores"]) == {"Chat", "Reasoning", "score"} and report["rows"] == 5
    assert "RewardBench: 5 rows, 5 prompts" in capsys.readouterr().out


def test_evaluate_rewardbench_says_how_unlike_the_training_data_the_rows_are(tmp_path, capsys):
    """The other readings print the novelty / shift line; --rewardbench printed none."""
    import lightning as L

    import unirank
    from unirank.cli import main
    from unirank.training.export import export_model

    from ..conftest import REPO

    module = unirank.UnirankModule(
        model="tiny", adapter=unirank.ChatAdapter(max_length=32), schedule=unirank.Schedule(1, 1)
    )
    data = unirank.UnirankDataModule(unirank.Preferences(str(REPO / "data/demo-preferences.jsonl")))
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, datamodule=data)  # fmt: skip
    model = export_model(module, tmp_path / "model")
    main(["evaluate", "--model", str(model), "--rewardbench", str(write(tmp_path / "rb.jsonl", V1)),
          "--out", str(tmp_path / "report")])  # fmt: skip
    report = json.loads((tmp_path / "report/metrics.json").read_text())["model"]
    assert report["shift"]["inputs"] == 10 and "set_test" in report["shift"]
    assert "novelty:" in capsys.readouterr().out
