"""Inputs that used to give a silently wrong or silently accepted result now give a clear error or a
documented handling (one case per row, each input built here)."""

import os
import stat

import numpy as np
import polars as pl
import pytest

from unirank import domains
from unirank.atomic import atomic_path, write_parquet
from unirank.cli import main
from unirank.data.datamodule import UnirankDataModule
from unirank.data.tables import TableError, Tables, validate
from unirank.domains.retrieval.evaluation import evaluate_retrieval
from unirank.metrics.retrieval import retrieval_metrics
from unirank.module import Schedule, UnirankModule


def tables(split="train", comparisons=True, label=None):
    return Tables(
        groups=pl.DataFrame({"group_id": ["g1", "g2"], "context": ["q1", "q2"], "split": [split, "train"]}),
        items=pl.DataFrame(
            {"group_id": ["g1", "g1", "g2"], "item_id": ["a", "b", "c"], "text": ["x", "y", "z"], "label": [label] * 3},
            schema_overrides={"label": pl.Float64},
        ),  # fmt: skip
        comparisons=pl.DataFrame(
            {
                "group_id": ["g1"] if comparisons else [],
                "item_a": ["a"] if comparisons else [],
                "item_b": ["b"] if comparisons else [],
            },
            schema={"group_id": pl.String, "item_a": pl.String, "item_b": pl.String},
        ),  # fmt: skip
    )


def test_an_unknown_split_names_the_group_row():
    with pytest.raises(TableError, match=r"src \(groups\), row 0: split='dev' is not one of train, validation, test"):
        validate(tables(split="dev"), "src")


@pytest.mark.parametrize(
    ("epochs", "message"),
    [((-1, 1), r"pairwise_epochs=-1: epochs cannot be negative"), ((0, 0), r"every stage has 0 epochs")],
)
def test_a_schedule_that_trains_nothing_is_refused(epochs, message):
    with pytest.raises(ValueError, match=message):
        Schedule(*epochs)


def test_data_with_nothing_to_train_on_is_refused_before_training(tmp_path):
    from unirank.data.sources import TablesDir

    tables(comparisons=False).write(tmp_path / "data")
    data = UnirankDataModule(TablesDir(str(tmp_path / "data")))
    module = UnirankModule(model="tiny")
    data.attach(module.tokenizer, module.adapter)
    with pytest.raises(TableError, match=r"data: the train split has no comparisons and no labels"):
        data.setup("fit")


def test_a_fit_that_did_not_converge_writes_nothing(tmp_path, monkeypatch):
    import unirank.fitting

    tables().comparisons.write_parquet(tmp_path / "comparisons.parquet")
    real = unirank.fitting.fit_targets

    def not_converged(*args, **kwargs):
        targets, fit = real(*args, **kwargs)
        return targets, type(fit)(**{**fit.__dict__, "converged": False})

    monkeypatch.setattr(unirank.fitting, "fit_targets", not_converged)
    with pytest.raises(SystemExit, match=r"did not converge .* nothing was written"):
        main(["targets", "--comparisons", str(tmp_path / "comparisons.parquet"), "--out", str(tmp_path / "t.parquet")])
    assert not (tmp_path / "t.parquet").exists()


def targets_of(tmp_path, comparisons, *flags):
    pl.DataFrame(comparisons).write_parquet(tmp_path / "comparisons.parquet")
    main(["targets", "--comparisons", str(tmp_path / "comparisons.parquet"), "--out", str(tmp_path / "t.parquet"),
          *flags])  # fmt: skip


ONE_WAY = {"group_id": ["g"] * 2, "item_a": ["a", "b"], "item_b": ["b", "c"], "p": [1.0, 1.0]}


def test_a_fit_the_data_do_not_determine_is_not_reported_as_converged(tmp_path):
    """l2 = 1e-6 and comparisons all one way: the Newton gradient vanishes at latents of thousands."""
    with pytest.raises(SystemExit, match=r"converged, but 3 latent\(s\) have standard errors above 5 .*nothing was"):
        targets_of(tmp_path, ONE_WAY, "--l2", "1e-6")
    assert not (tmp_path / "t.parquet").exists()
    targets_of(tmp_path, ONE_WAY)  # at the default l2 = 1 the same data are fitted
    assert pl.read_parquet(tmp_path / "t.parquet")["std_err"].max() <= 1.0


@pytest.mark.parametrize(
    ("comparisons", "message"),
    [
        ({"group_id": [], "item_a": [], "item_b": [], "p": []}, r"no comparisons, nothing to fit"),
        ({**ONE_WAY, "p": ["1", "1"]}, r"p has type String: it must hold numbers"),
        ({**ONE_WAY, "p": [1.0, 2.0]}, r"row 1: p=2.0 is not a probability"),
    ],
)
def test_targets_refuse_what_they_cannot_fit(tmp_path, comparisons, message):
    schema = {"group_id": pl.String, "item_a": pl.String, "item_b": pl.String}
    frame = pl.DataFrame(comparisons, schema_overrides=schema)
    with pytest.raises(SystemExit, match=message):
        targets_of(tmp_path, frame)
    assert not (tmp_path / "t.parquet").exists()


def test_targets_of_all_ties_are_warned_of(tmp_path):
    with pytest.warns(UserWarning, match=r"all 2 comparisons are ties"):
        targets_of(tmp_path, {**ONE_WAY, "p": [0.5, 0.5]})


def test_queries_without_a_relevant_document_are_undefined_not_zero():
    run = {"q1": {"a": 1.0, "b": 0.5}, "q2": {"c": 1.0}}
    with pytest.raises(ValueError, match=r"none of the 2 queries has a relevant document"):
        retrieval_metrics(run, {"q1": {"a": 0}, "q2": {"c": 0}})
    result = retrieval_metrics(run, {"q1": {"a": 1}, "q2": {"c": 0}})
    assert result["ndcg@10"] == 1.0 and result["queries_without_relevant"] == 1


def test_the_recall_column_names_the_depth_that_was_reranked():
    class Constant:
        def score_texts(self, contexts, candidates):
            return np.linspace(1, 0, len(candidates))

    t = validate(tables(label=1.0), "t")
    report = evaluate_retrieval({"m": Constant()}, t, {"g1": {"a": 1}, "g2": {"c": 1}})
    assert report["depth"] == 2 and "recall@2" in report["systems"]["m"] and "recall@100" not in report["systems"]["m"]


def test_outputs_are_written_with_the_users_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_parquet(pl.DataFrame({"x": [1]}), tmp_path / "t.parquet")
        with atomic_path(tmp_path / "folder", directory=True) as folder:
            (folder / "f.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.parquet").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "folder" / "f.txt").stat().st_mode) == 0o644


def test_a_model_folder_without_its_tokenizer_is_an_error(tmp_path):
    from unirank.adapters import ChatAdapter
    from unirank.model import Model
    from unirank.training.export import export_model

    export_model(UnirankModule(model="tiny", adapter=ChatAdapter(max_length=32)), tmp_path / "model")
    for name in ("tokenizer.json", "vocab.txt"):
        (tmp_path / "model" / name).unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"model: not a complete model folder: missing tokenizer files"):
        Model.from_pretrained(tmp_path / "model")


def test_a_beir_text_that_is_null_is_an_error_not_the_string_none(tmp_path):
    from unirank.domains.retrieval.readers import read_beir

    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "text": null}\n')
    (tmp_path / "queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    (tmp_path / "qrels/train.tsv").write_text("q1\td1\t1\n")
    with pytest.raises(TableError, match=r"corpus.jsonl, line 1: 'text' must be a string, got NoneType"):
        read_beir(tmp_path, "train")


def test_a_category_is_counted_per_row_not_per_prompt(tmp_path):
    from unirank.domains.chat.readers import read_preferences

    path = tmp_path / "p.jsonl"
    row = '{"prompt": "same", "chosen": "a", "rejected": "%s", "category": "%s"}\n'
    path.write_text(row % ("b", "safety") + row % ("c", "chat"))
    tables = read_preferences(path)
    by_category = tables.comparisons.join(tables.groups, on="group_id").group_by("category").len()
    assert dict(by_category.iter_rows()) == {"safety": 1, "chat": 1}


def test_evaluate_reports_the_thresholds_a_user_names():
    class Ranked:
        def score_texts(self, contexts, candidates):
            return np.array([3.0, -3.0, 2.0])  # σ: 0.95, 0.05, 0.88

    t = validate(tables(label=1.0), "t")
    report = evaluate_retrieval({"m": Ranked()}, t, {"g1": {"a": 1}, "g2": {"c": 1}}, thresholds=(0.9, 0.5))
    rows = {row["threshold"]: row for row in report["systems"]["m"]["thresholds"]}
    assert rows[0.9]["predicted_positive"] == 1 and rows[0.5]["predicted_positive"] == 2
    assert rows[0.5]["precision"] == 1.0 and rows[0.5]["groups_with_predictions"] == 2

    from unirank.evaluation.report import summarise

    report["systems"]["m"].pop("_curve")
    assert "σ > 0.90:      1 predicted, precision 1.000" in summarise(
        report, domains.get("retrieval").summary_lines(report)
    )


def test_a_relevant_document_the_first_stage_missed_still_counts(tmp_path):
    from unirank.domains.retrieval.evaluation import list_qrels
    from unirank.domains.retrieval.readers import write_qrels

    class Ranked:
        def score_texts(self, contexts, candidates):
            return np.linspace(1, 0, len(candidates))

    t = validate(tables(label=1.0), "t")
    t.write(tmp_path)
    with pytest.warns(UserWarning, match="no qrels.tsv"):
        from_labels = list_qrels(t, tmp_path)
    # g2's only relevant document was never retrieved: BEIR's protocol scores g2 0, not "undefined"
    write_qrels({"g1": {"a": 1, "missed": 1}, "g2": {"gone": 1}, "elsewhere": {"x": 1}}, tmp_path / "qrels.tsv")
    full = list_qrels(t, tmp_path)
    assert set(full) == {"g1", "g2"}
    listed = evaluate_retrieval({"m": Ranked()}, t, from_labels)["systems"]["m"]
    judged = evaluate_retrieval({"m": Ranked()}, t, full)["systems"]["m"]
    assert judged["n_queries"] == 2 and judged["ndcg@10"] < listed["ndcg@10"]
    assert judged["recall@2"] == pytest.approx(0.25)  # g1: 1 of 2, g2: 0 of 1
