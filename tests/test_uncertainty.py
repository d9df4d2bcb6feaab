"""Uncertainty per score: the head posterior and the novelty reference are fitted when training ends,
travel with checkpoints and exports, and `Model` / `unirank score` report a standard error, a
conservative probability and how novel each input is."""

import json

import lightning as L
import numpy as np
import pytest

from unirank import domains
from unirank.adapters import ChatAdapter
from unirank.cli import main
from unirank.data.datamodule import UnirankDataModule
from unirank.domains.chat.source import Preferences
from unirank.model import Model
from unirank.model.novelty import NOVELTY_FILE
from unirank.model.posterior import POSTERIOR_FILE, posterior_from_state, posterior_state
from unirank.module import Calibration, Schedule, UnirankModule
from unirank.training.export import export_model
from unirank.training.uncertainty import restore_uncertainty, uncertainty_state

from .conftest import REPO

PAIRS = [("How do I boil an egg?", "Put the egg in boiling water for 9 minutes."), ("Hi", "Eggs are food.")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    module = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=64), schedule=Schedule(1, 1), lr=1e-3)
    data = UnirankDataModule(
        Preferences(str(REPO / "data/demo-preferences.jsonl"), validation_fraction=0.2), batch_groups=8, seed=0
    )
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, datamodule=data)  # fmt: skip
    return module, data


def test_posterior_is_fitted_on_the_training_comparisons(trained):
    module, data = trained
    posterior = module.scorer.head_posterior
    dim = module.scorer.head_vector().numel()
    assert posterior is not None and posterior.covariance.shape == (dim, dim)
    assert posterior.prior_precision > 0 and 0 < posterior.effective_parameters <= dim
    assert np.all(np.linalg.eigvalsh(posterior.covariance) > 0)
    train = data.datasets["train"]
    assert f"of {train.n_items} items" in posterior.info["fitted_on"]


def test_posterior_survives_checkpoint_state_and_export(trained, tmp_path):
    module, _ = trained
    again = posterior_from_state(posterior_state(module.scorer.head_posterior))
    np.testing.assert_array_equal(again.covariance, module.scorer.head_posterior.covariance)
    export_model(module, tmp_path / "model")
    assert (tmp_path / "model" / POSTERIOR_FILE).exists()
    info = json.loads((tmp_path / "model/unirank.json").read_text())
    assert info["uncertainty"]["file"] == POSTERIOR_FILE
    predictor = Model.from_pretrained(tmp_path / "model")
    np.testing.assert_allclose(predictor.posterior.covariance, module.scorer.head_posterior.covariance)
    rows = predictor.score(PAIRS)
    logits = module.scorer.score_texts([c for c, _ in PAIRS], [t for _, t in PAIRS])
    for row, r in zip(rows, logits):
        assert row["score"] == pytest.approx(r, abs=1e-5)
        assert row["logit_std_error"] > 0 and 0 < row["probability_lower"] < row["probability"]
        expected = 1 / (1 + np.exp(-(r - 1.6449 * row["logit_std_error"])))
        assert row["probability_lower"] == pytest.approx(expected, rel=1e-6)


def test_standard_error_is_the_posterior_variance_of_the_item_features(trained):
    module, _ = trained
    logits, features = module.scorer.score_encoded_with_features(
        module.adapter.encode(module.tokenizer, [c for c, _ in PAIRS], [t for _, t in PAIRS])
    )
    np.testing.assert_allclose(
        logits, module.scorer.score_texts([c for c, _ in PAIRS], [t for _, t in PAIRS]), atol=1e-6
    )
    theta = module.scorer.head_vector().numpy()
    np.testing.assert_allclose(np.hstack([features, np.ones((2, 1))]) @ theta, logits, atol=1e-5)  # the head's input


def test_score_command_reports_the_uncertainty_and_novelty(trained, tmp_path):
    module, _ = trained
    export_model(module, tmp_path / "model")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"context": c, "candidate": t}) + "\n" for c, t in PAIRS))
    main(["score", "--model", str(tmp_path / "model"), "--input", str(rows), "--out", str(tmp_path / "s.jsonl")])
    scored = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert all(r["logit_std_error"] > 0 and r["probability_lower"] < r["probability"] for r in scored)
    assert all(0 <= r["novelty"] <= 2 and 0 <= r["novelty_percentile"] <= 1 for r in scored)


def test_no_posterior_when_not_asked(tmp_path):
    module = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=64), schedule=Schedule(1, 0),
                           calibration=Calibration(uncertainty="none"))  # fmt: skip
    data = UnirankDataModule(Preferences(str(REPO / "data/demo-preferences.jsonl")), batch_groups=8, seed=0)
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, datamodule=data)  # fmt: skip
    assert module.scorer.head_posterior is None
    export_model(module, tmp_path / "model")
    assert not (tmp_path / "model" / POSTERIOR_FILE).exists()
    assert Model.from_pretrained(tmp_path / "model").score(PAIRS)[0].keys() == {"score", "probability"}


def test_evaluate_reports_selective_prediction_by_the_posterior(trained, tmp_path):
    from unirank.domains.chat.evaluation import evaluate_preferences
    from unirank.evaluation.report import summarise

    module, data = trained
    export_model(module, tmp_path / "model")
    tables = Preferences(str(REPO / "data/demo-preferences.jsonl")).load()
    report = evaluate_preferences({"m": Model.from_pretrained(tmp_path / "model")}, tables)
    entry = report["systems"]["m"]
    sel = entry["selective_uncertainty"]
    assert sel["n"] == entry["selective"]["n"] and sel["margin_std_error_median"] > 0
    low, high = sel["aurc_minus_plain_interval"]
    assert low <= sel["aurc_minus_plain"] <= high or np.isclose(low, high)
    assert "by the head posterior" in summarise(report, domains.get("chat").summary_lines(report))


def test_evaluate_reports_how_unfamiliar_the_inputs_are_and_the_accuracy_on_and_off_them(trained, tmp_path):
    from unirank.domains.chat.evaluation import evaluate_preferences
    from unirank.evaluation.report import summarise

    module, data = trained
    export_model(module, tmp_path / "model")
    predictor = Model.from_pretrained(tmp_path / "model")
    train = data.tables.split("train")
    seen = evaluate_preferences({"m": predictor}, train)["systems"]["m"]["shift"]
    assert seen["inputs"] == train.items.height and seen["unfamiliar_share"] == 0.0  # its own references
    garbled = tmp_path / "garbled.jsonl"
    rows = [{"prompt": f"ζ{i} ∂∫ ⊕ ☃ {i * 7919}", "chosen": "☃ ☃ ☃ ⊕ ∂", "rejected": f"{i} ∫∫∫ ζζ"} for i in range(12)]
    garbled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = evaluate_preferences({"m": predictor}, Preferences(str(garbled)).load())
    shift = report["systems"]["m"]["shift"]
    assert shift["unfamiliar_share"] > seen["unfamiliar_share"]
    assert shift["median_percentile"] > seen["median_percentile"]
    pairs = shift["pairs"]
    assert pairs["unfamiliar"]["n"] + pairs["familiar"]["n"] == report["systems"]["m"]["n"]
    assert "of the training inputs" in summarise(report, domains.get("chat").summary_lines(report))


def test_select_keeps_candidates_above_the_threshold_and_names_the_best(trained, tmp_path):
    module, _ = trained
    export_model(module, tmp_path / "model")
    prompts = [
        {"context": "How do I boil an egg?", "candidates": [t for _, t in PAIRS] + ["Boil it."], "id": 7},
        {"context": "Hi", "candidates": ["Hello! How can I help?"]},
    ]
    rows = tmp_path / "prompts.jsonl"
    rows.write_text("".join(json.dumps(p) + "\n" for p in prompts))
    predictor = Model.from_pretrained(tmp_path / "model")
    probabilities = [r["probability"] for r in predictor.score(
        [("How do I boil an egg?", c) for c in prompts[0]["candidates"]])]  # fmt: skip
    low, high = sorted(probabilities)[:2]
    threshold = (low + high) / 2  # between two candidates: another batch's rounding cannot move one across it
    out = tmp_path / "selected.jsonl"
    main(["select", "--model", str(tmp_path / "model"), "--input", str(rows), "--threshold", str(threshold),
          "--out", str(out)])  # fmt: skip
    first, second = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["id"] == 7 and first["best"]["index"] == int(np.argmax(probabilities))
    assert sorted(first["kept"]) == [i for i, p in enumerate(probabilities) if p >= threshold]
    assert 0 < first["best"]["beats_runner_up"] < 1 and "beats_runner_up" not in second["best"]
    main(["select", "--model", str(tmp_path / "model"), "--input", str(rows), "--threshold", str(threshold),
          "--conservative", "--out", str(out)])  # fmt: skip
    conservative = json.loads(out.read_text().splitlines()[0])
    assert set(conservative["kept"]) <= set(first["kept"])
    assert all(s["probability_lower"] < s["probability"] for s in conservative["scores"])


def test_select_refuses_bad_rows_and_a_bad_threshold(trained, tmp_path):
    module, _ = trained
    export_model(module, tmp_path / "model")
    rows = tmp_path / "prompts.jsonl"
    rows.write_text(json.dumps({"context": "Hi", "candidates": []}) + "\n")
    with pytest.raises(SystemExit, match="line 1: 'candidates' must be a non-empty list of strings"):
        main(["select", "--model", str(tmp_path / "model"), "--input", str(rows), "--out", str(tmp_path / "o.jsonl")])
    with pytest.raises(SystemExit, match="must be a probability"):
        main(["select", "--model", str(tmp_path / "model"), "--input", str(rows), "--threshold", "1.5",
              "--out", str(tmp_path / "o.jsonl")])  # fmt: skip
    assert not (tmp_path / "o.jsonl").exists()


def test_the_reference_is_fitted_with_the_posterior_and_travels_with_checkpoints_and_exports(trained, tmp_path):
    module, data = trained
    reference = module.scorer.novelty
    assert reference is not None and len(reference.states) == data.datasets["train"].n_items  # the demo: all sampled
    state = uncertainty_state(module.scorer)
    copy = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=64))
    restore_uncertainty(copy.scorer, state)
    np.testing.assert_array_equal(copy.scorer.novelty.states, reference.states)
    export_model(module, tmp_path / "model")
    assert (tmp_path / "model" / NOVELTY_FILE).exists()
    assert json.loads((tmp_path / "model/unirank.json").read_text())["novelty"]["references"] == len(reference.states)
    loaded = Model.from_pretrained(tmp_path / "model")
    np.testing.assert_allclose(loaded.scorer.novelty.states, reference.states)
    train = data.tables.split("train")
    seen = list(zip(train.item_contexts()[:3], train.items["text"].to_list()[:3]))
    rows = loaded.score(seen + [("Qu'est-ce que la photosynthèse ?", "ζ ∂ ∫ 42 ⊕ ☃ ☃ ☃")])
    assert all(r["novelty"] == pytest.approx(0.0, abs=1e-5) for r in rows[:3])  # training inputs are references
    assert rows[3]["novelty"] > max(r["novelty"] for r in rows[:3]) and rows[3]["novelty_percentile"] > 0


def test_the_delta_method_error_is_given_only_where_it_holds():
    """se ≤ 0.5: σ'(r)·se; beyond it None, and the interval mapped through σ stands in its place."""
    from unirank.fitting.laplace import HeadPosterior
    from unirank.model.posterior import item_uncertainty

    posterior = HeadPosterior(np.eye(2), 1.0, 1.0, {})
    features = np.array([[0.3], [2.0]])  # variance ‖(x, 1)‖²: se 1.044 and 2.236
    small = HeadPosterior(np.eye(2) * 0.04, 1.0, 1.0, {})  # se 0.2088
    wide = item_uncertainty(posterior, np.zeros(2), features)
    assert np.isnan(wide["probability_std_error"]).all()
    assert wide["probability_low_95"][1] == pytest.approx(1 / (1 + np.exp(1.96 * np.sqrt(5))), rel=1e-4)
    narrow = item_uncertainty(small, np.zeros(2), features[:1])
    assert narrow["probability_std_error"][0] == pytest.approx(0.25 * 0.2 * np.sqrt(1.09), rel=1e-6)


def test_a_set_is_read_as_shifted_by_its_share_of_unfamiliar_inputs():
    from unirank.metrics.shift import set_shift_test

    familiar = np.linspace(0, 0.949, 100)
    assert not set_shift_test(np.r_[familiar[:97], [0.99] * 3])["shifted"]  # 3 %: as in distribution
    assert not set_shift_test(np.r_[familiar[:88], [0.99] * 12])["shifted"]  # 12 %: in-domain sets read up to 10 %
    assert set_shift_test(np.r_[familiar[:70], [0.99] * 30])["shifted"]
    assert not set_shift_test([0.99])["shifted"]  # one input: p = 0.05, not evidence of a shift
    assert set_shift_test([0.99] * 4)["shifted"]


def reference_reading(folder, own_novelty: float):
    """The export's novelty reference with every reference distance set to `own_novelty`: 0 makes
    every input unfamiliar (a shifted set), 10 none. (The tiny model's logit standard error is
    about 21, so its lower bounds are near 1e-15: the test's threshold is 1e-20.)"""
    import torch
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / NOVELTY_FILE))
    state["own_novelty"] = torch.full_like(state["own_novelty"], own_novelty)
    save_file(state, str(folder / NOVELTY_FILE))


def test_on_a_shifted_set_conservative_decisions_abstain_until_recalibrated(trained, tmp_path, capsys):
    module, _ = trained
    export_model(module, tmp_path / "model")
    lists = tmp_path / "lists.jsonl"
    lists.write_text(json.dumps({"context": PAIRS[0][0], "candidates": [PAIRS[0][1], PAIRS[1][1], "No."]}) + "\n")
    select = ["select", "--model", str(tmp_path / "model"), "--input", str(lists), "--threshold", "1e-20",
              "--conservative", "--out", str(tmp_path / "kept.jsonl")]  # fmt: skip

    def kept():
        main(select)
        return json.loads((tmp_path / "kept.jsonl").read_text())["kept"]

    reference_reading(tmp_path / "model", 10.0)
    assert kept() and "unlike the training data" not in capsys.readouterr().err
    reference_reading(tmp_path / "model", 0.0)
    assert kept() == [] and "are unlike the training data" in capsys.readouterr().err
    rows = tmp_path / "rows.jsonl"
    rows.write_text((json.dumps({"context": PAIRS[0][0], "candidate": PAIRS[0][1]}) + "\n") * 4)  # 4 unfamiliar
    main(["score", "--model", str(tmp_path / "model"), "--input", str(rows), "--out", str(tmp_path / "s.jsonl")])
    assert all(
        json.loads(line)["probability_lower"] is None for line in (tmp_path / "s.jsonl").read_text().splitlines()
    )
    labels = tmp_path / "labels.jsonl"  # the new domain's labels re-anchor the novelty percentiles
    rng = np.random.default_rng(0)
    rows_of = [{"context": f"question {i}", "candidate": f"answer {i} " * (1 + i % 5)} for i in range(60)]
    labels.write_text("".join(json.dumps({**r, "label": int(rng.random() < 0.5)}) + "\n" for r in rows_of))
    main(["recalibrate", "--model", str(tmp_path / "model"), "--labels", str(labels), "--out", str(tmp_path / "new")])
    info = json.loads((tmp_path / "new/unirank.json").read_text())
    assert info["calibration"]["recalibration"]["novelty_reanchored_on"] == 60
    new = Model.from_pretrained(tmp_path / "new")
    from unirank.metrics.shift import set_shift_test

    percentiles = [r["novelty_percentile"] for r in new.score([(r["context"], r["candidate"]) for r in rows_of])]
    assert not set_shift_test(percentiles)["shifted"]
