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
