"""`unirank.model.Model`, the inference surface: it loads and scores without Lightning, training or
evaluation code; saves what it loaded; ranks, scores with uncertainty and reads process steps."""

import os
import subprocess
import sys

import numpy as np
import pytest

from unirank.adapters import ChatAdapter, ProcessAdapter
from unirank.atomic import OutputError
from unirank.model import Model
from unirank.module import UnirankModule
from unirank.training.export import export_model

PAIRS = [("How do I boil an egg?", "Put it in boiling water for 9 minutes."), ("Hi", "Eggs are food.")]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model") / "model"
    return export_model(UnirankModule(model="tiny", adapter=ChatAdapter(max_length=32)), folder)


def test_loading_and_predicting_imports_no_lightning_training_or_evaluation(export):
    code = (
        "import sys\nfrom unirank.model import Model\n"
        f"m = Model.from_pretrained({str(export)!r})\n"
        f"p = m.predict({PAIRS!r})\nassert p.shape == (2,) and ((p > 0) & (p < 1)).all()\n"
        "banned = ('lightning', 'unirank.training', 'unirank.evaluation', 'unirank.module')\n"
        "loaded = [n for n in banned if n in sys.modules]\n"
        "assert not loaded, loaded\nprint('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "ok"


def test_predict_is_sigmoid_of_the_logit_and_rank_orders_by_it(export):
    model = Model.from_pretrained(export)
    logits = model.score_texts(*zip(*PAIRS))
    np.testing.assert_allclose(model.predict(PAIRS), 1 / (1 + np.exp(-logits)), rtol=1e-12)
    ranked = model.rank("How do I boil an egg?", ["a", "Boil it.", "Eggs are food."], top_k=2)
    assert len(ranked) == 2 and ranked[0]["score"] >= ranked[1]["score"]
    assert ranked[0]["score"] == pytest.approx(1 / (1 + np.exp(-ranked[0]["logit"])))
    rows = model.score(PAIRS)
    assert {"score", "probability"} <= rows[0].keys() and rows[0]["probability"] == pytest.approx(
        1 / (1 + np.exp(-logits[0]))
    )


def test_a_loaded_model_saves_to_a_new_folder_and_scores_the_same(export, tmp_path):
    model = Model.from_pretrained(export)
    with pytest.raises(OutputError, match="loaded from this folder"):
        model.save_pretrained(export, overwrite=True)
    again = Model.from_pretrained(model.save_pretrained(tmp_path / "copy"))
    np.testing.assert_allclose(again.score_texts(*zip(*PAIRS)), model.score_texts(*zip(*PAIRS)), atol=1e-6)
    assert again.info["domain"] == model.info["domain"] == "chat"


def test_a_process_model_scores_each_step_and_aggregates_them(tmp_path):
    folder = export_model(UnirankModule(model="tiny", adapter=ProcessAdapter(max_length=64)), tmp_path / "m")
    model = Model.from_pretrained(folder)
    read = model.score_steps(["2 + 2 = ?"], [["2 + 2 is 4.", "So the answer is 4."]])
    assert len(read[0]["step_probabilities"]) == 2
    assert read[0]["probability"] == pytest.approx(min(read[0]["step_probabilities"]))  # min aggregation


def test_score_steps_needs_a_process_model(export):
    with pytest.raises(ValueError, match="process model"):
        Model.from_pretrained(export).score_steps(["q"], [["s"]])


def test_the_old_names_warn_and_give_the_model():
    import unirank

    with pytest.warns(FutureWarning, match="unirank.Model"):
        assert unirank.Predictor is Model
    with pytest.warns(FutureWarning):
        assert unirank.load_scorer == Model.from_pretrained


def test_every_saved_model_has_a_model_card_the_hub_reads(export, tmp_path):
    from huggingface_hub import ModelCard

    from unirank.model.card import model_card

    folder = Model.from_pretrained(export).save_pretrained(tmp_path / "saved")
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "sentence-transformers" and "reward-model" in card.data.tags
    assert "base_model" not in card.data.to_dict()  # `tiny` has no Hub name
    assert 'CrossEncoder("saved")' in card.text and "unirank score --model saved" in card.text
    calibrated = {
        "domain": "retrieval", "base_model": "minilm", "validation": {"ece": 0.3},
        "calibration": {"probability": "sigmoid(logit)", "final_fit": {
            "applied": True, "fitted_on": "validation split: 80 labels",
            "before": {"ece": 0.39, "brier": 0.2, "n": 80},
            "after": {"ece": 0.002, "brier": 0.05, "n": 80, "ece_interval": [0.001, 0.04], "groups": 4},
            "held_out": {"folds": 4, "before": {"ece": 0.39}, "after": {"ece": 0.02}}}},
    }  # fmt: skip
    text = model_card(calibrated, "model")
    assert 'base_model: "sentence-transformers/all-MiniLM-L6-v2"' in text and 'pipeline_tag: "text-ranking"' in text
    assert "| after the final calibration (folded into the head) | 0.0020 [0.0010, 0.0400] | 0.0500 |" in text
    assert "ECE 0.3900 as trained, 0.0200 after" in text
    not_applied = {**calibrated, "calibration": {"final_fit": {"applied": False, "reason": "it would raise it"}}}
    assert "The final calibration was not applied: it would raise it." in model_card(not_applied, "model")


def test_a_new_heads_random_start_is_not_reported_but_a_backbones_is(tmp_path, capfd):
    import warnings

    from unirank.model.backbone import load_backbone

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, tokenizer = load_backbone("minilm")
    assert "LOAD REPORT" not in capfd.readouterr().err and not [w for w in caught if "start at random" in str(w)]
    state = {k: v for k, v in model.state_dict().items() if "layer.0.output.dense" not in k and "classifier" not in k}
    model.config.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    with pytest.warns(UserWarning, match=r"2 backbone weights are not in its weights file and start at random"):
        load_backbone(str(tmp_path))


def test_the_card_shows_the_validation_reliability_and_thresholds(tmp_path):
    import json

    from unirank.model.card import model_card, reliability_plot
    from unirank.training.final_calibration import reliability_record

    prob = np.array([0.1, 0.2, 0.35, 0.6, 0.8, 0.95])
    truth = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    record = reliability_record(prob, truth)
    assert record["thresholds"][1] == {"threshold": 0.5, "decisions": 3, "precision": 1.0, "recall": 0.75}
    assert sum(b["count"] for b in record["bins"]) == 6
    info = {"domain": "chat", "calibration": {"final_fit": {"applied": False, "reason": "x", "reliability": record}}}
    text = model_card(json.loads(json.dumps(info)), "model")
    assert "| t = 0.5 | 3 | 1.000 | 0.750 |" in text and "(reliability.png)" in text
    assert reliability_plot(info, tmp_path / "reliability.png") and (tmp_path / "reliability.png").stat().st_size > 1000


def test_model_reads_as_a_cross_encoder_does(export):
    """The CrossEncoder spellings: one pair, batch_size, empty inputs, rank's top_k third with the
    probability as its score (what CrossEncoder.rank gives on the folder), return_documents."""
    import torch
    from sentence_transformers import CrossEncoder

    model, theirs = Model.from_pretrained(export), CrossEncoder(str(export))
    assert isinstance(model.predict(PAIRS[0]), float)
    assert model.predict(PAIRS[0]) == pytest.approx(float(theirs.predict(PAIRS[0])), abs=1e-6)
    np.testing.assert_allclose(model.predict(PAIRS, batch_size=1), model.predict(PAIRS), atol=1e-5)  # other padding
    assert isinstance(model.predict(PAIRS, convert_to_numpy=False), torch.Tensor)
    assert model.predict([]).shape == (0,) and model.rank("q", []) == [] and model.score([]) == []
    documents = ["a", "Boil it for 9 minutes.", "Eggs are food."]
    ours, cross = model.rank(PAIRS[0][0], documents, 2, return_documents=True), theirs.rank(PAIRS[0][0], documents, 2)
    assert [r["corpus_id"] for r in ours] == [r["corpus_id"] for r in cross]
    np.testing.assert_allclose([r["score"] for r in ours], [float(r["score"]) for r in cross], atol=1e-5)  # padding
    assert ours[0]["text"] == documents[ours[0]["corpus_id"]]
    with pytest.warns(FutureWarning, match="first_stage_scores= by name"):
        assert len(model.rank(PAIRS[0][0], documents, [0.1, 0.2, 0.3], 1)) == 1
    with pytest.warns(FutureWarning, match="_require"):
        model.require("score")


def test_the_docstring_examples_run(export):
    import doctest

    import unirank.model.model as module

    model = Model.from_pretrained(export, device="cpu")
    failed, tried = doctest.testmod(module, extraglobs={"folder": export, "model": model}, verbose=False)
    assert tried >= 5 and failed == 0
