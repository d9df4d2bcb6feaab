"""Recalibration on a new domain: the refit recovers a known shift, the held-out ECE is measured out
of fold, the command writes a new export (never over the old) whose σ is the recalibrated probability."""

import hashlib
import json

import numpy as np
import pytest
from scipy import special

from unirank.metrics.cross_fit import Evidence, recalibrate_scores


def shifted_labels(a: float, b: float, n_groups: int = 60, size: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    scores = rng.normal(0.0, 3.0, n_groups * size)
    labels = (rng.random(len(scores)) < special.expit(a * scores + b)).astype(float)
    return scores, labels, np.repeat(np.arange(n_groups), size)


def test_refit_recovers_a_known_scale_and_base_rate_shift():
    scores, labels, groups = shifted_labels(0.5, -2.0)
    record = recalibrate_scores(Evidence(scores, groups, label=labels), "bradley-terry", with_bias=True)
    assert abs(record["a"] - 0.5) < 0.1 and abs(record["b"] + 2.0) < 0.3
    assert record["evidence"] == "labels" and record["groups"] == 60 and record["folds"] == 5
    # as the model reads them the probabilities are far off; out of fold, the refit is calibrated
    assert record["before"]["ece"] > 0.2 and record["after"]["ece"] < 0.05
    assert record["after"]["ece_interval"][1] < record["before"]["ece_interval"][0]


def test_refit_on_comparisons_recovers_a_temperature():
    rng = np.random.default_rng(1)
    scores = rng.normal(0.0, 3.0, 600)
    comp_a, comp_b = np.arange(0, 600, 2), np.arange(1, 600, 2)
    p = (rng.random(300) < special.expit(0.4 * (scores[comp_a] - scores[comp_b]))).astype(float)
    groups = np.repeat(np.arange(150), 4)
    evidence = Evidence(scores, groups, comp_a=comp_a, comp_b=comp_b, p=p, weight=np.ones(300))
    record = recalibrate_scores(evidence, "bradley-terry", with_bias=True)
    assert abs(record["a"] - 0.4) < 0.1 and record["b"] == 0.0 and record["evidence"] == "comparisons"
    assert record["after"]["ece"] < record["before"]["ece"]


def test_a_single_group_cannot_hold_labels_out():
    scores, labels, _ = shifted_labels(1.0, 0.0, n_groups=1)
    with pytest.raises(ValueError, match="at least 2 groups"):
        recalibrate_scores(Evidence(scores, np.zeros(len(scores)), label=labels), "bradley-terry", True)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    import torch

    from unirank.adapters import RetrievalAdapter
    from unirank.module import UnirankModule
    from unirank.training.export import export_model

    module = UnirankModule(model="minilm", adapter=RetrievalAdapter(max_length=64))
    with torch.no_grad():
        module.scorer.final_layer().weight.mul_(300.0)  # the new head's logits spread over several units
    folder = tmp_path_factory.mktemp("recalibrate") / "model"
    export_model(module, folder)
    return folder


def digest(folder) -> str:
    return hashlib.sha1(b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())).hexdigest()


def test_recalibrate_command_writes_a_new_export_with_the_refitted_probability(export, tmp_path):
    from unirank.cli import main
    from unirank.model import Model

    words = "the quick brown fox jumps over a lazy dog while reward models score responses to prompts".split()
    rng = np.random.default_rng(0)
    pairs = [(f"query {q}", " ".join(rng.choice(words, 8))) for q in range(40) for _ in range(8)]
    old = Model.from_pretrained(export)
    logits = old.score_texts(*map(list, zip(*pairs)))
    labels = (rng.random(len(logits)) < special.expit(0.3 * logits - 1.0)).astype(int)
    rows = tmp_path / "labels.jsonl"
    rows.write_text("".join(json.dumps({"context": c, "candidate": t, "label": int(y)}) + "\n"
                            for (c, t), y in zip(pairs, labels)))  # fmt: skip
    before = digest(export)
    main(["recalibrate", "--model", str(export), "--labels", str(rows), "--out", str(tmp_path / "new")])
    assert digest(export) == before  # the old export is untouched
    info = json.loads((tmp_path / "new" / "unirank.json").read_text())
    fit = info["calibration"]["recalibration"]
    assert abs(fit["a"] - 0.3) < 0.15 and abs(fit["b"] + 1.0) < 0.5 and fit["after"]["ece"] < fit["before"]["ece"]
    new = Model.from_pretrained(tmp_path / "new")
    np.testing.assert_allclose(new.score_texts(*map(list, zip(*pairs))), fit["a"] * logits + fit["b"], atol=1e-4)
    with pytest.raises(SystemExit, match="new export"):
        main(["recalibrate", "--model", str(export), "--labels", str(rows), "--out", str(export)])


def test_recalibrate_names_a_bad_row_by_its_line(export, tmp_path):
    from unirank.cli import main

    rows = tmp_path / "labels.jsonl"
    rows.write_text(
        '{"context": "q", "candidate": "d", "label": 1}\n{"context": "q", "candidate": "d", "label": true}\n'
    )
    with pytest.raises(SystemExit, match=r"labels.jsonl, line 2: 'label' must be a finite number, got True"):
        main(["recalibrate", "--model", str(export), "--labels", str(rows), "--out", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()


def test_the_final_calibration_is_folded_in_only_where_it_helps_on_held_out_groups():
    from unirank.training.final_calibration import held_out_check

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(40), 20)
    truth = rng.normal(0, 1.5, groups.size)
    labels = (rng.random(groups.size) < 1 / (1 + np.exp(-truth))).astype(float)
    overconfident = 3.0 * truth  # a fit of a ≈ 1/3 helps on every held-out group
    held_out, reason = held_out_check(Evidence(overconfident, groups, label=labels), "bradley-terry", True)
    assert reason is None and held_out["after"]["ece"] < held_out["before"]["ece"]
    # two groups that disagree: each fold's fit, made on the other group, is wrong where it is applied
    groups, scores = np.repeat([0, 1], 50), np.full(100, 3.0)
    labels = np.repeat([1.0, 0.0], 50)
    held_out, reason = held_out_check(Evidence(scores, groups, label=labels), "bradley-terry", True)
    assert reason.startswith("it would raise the held-out ECE") and held_out["after"]["ece"] > held_out["before"]["ece"]
    _, reason = held_out_check(Evidence(scores, np.zeros(100, int), label=labels), "bradley-terry", True)
    assert reason.startswith("no held-out check possible")


def test_the_fused_rankings_weight_is_chosen_out_of_fold():
    """A useless reranker over an informative first stage: γ > 0, and on held-out queries the fused
    ranking is worth the first stage's NDCG, far above the reranker's."""
    from unirank.metrics.fusion import cross_fitted_fusion

    rng = np.random.default_rng(0)
    group = np.repeat(np.arange(40), 20)
    gains = (rng.random(len(group)) < 0.2).astype(float)
    first_stage = gains + rng.normal(0, 0.5, len(group))
    record = cross_fitted_fusion(rng.normal(0, 1, len(group)), first_stage, gains, group)
    held = record["held_out"]
    assert record["first_stage_weight"] > 0 and record["folds"] == 5
    assert held["fused"] > held["reranker"] + 0.2 and held["fused"] >= held["first stage"] - 0.02


def test_recalibrate_on_ranked_lists_refits_the_fused_rankings_weight(export, tmp_path):
    import polars as pl

    from unirank.cli import main
    from unirank.data.tables import Tables
    from unirank.model import Model

    rng = np.random.default_rng(1)
    words = "cells proteins genes light library catalogue index retrieval books journals".split()
    queries, size = 30, 8
    group = np.repeat([f"q{i}" for i in range(queries)], size)
    label = (rng.random(len(group)) < 0.25).astype(float)
    label[::size] = 1.0  # every list has a relevant document
    Tables(
        groups=pl.DataFrame({"group_id": [f"q{i}" for i in range(queries)], "context": ["a query"] * queries}),
        items=pl.DataFrame({
            "group_id": group, "item_id": [f"d{i}" for i in range(len(group))],
            "text": [" ".join(rng.choice(words, 6)) for _ in group], "label": label,
            "first_stage_score": label + rng.normal(0, 0.3, len(group)),
        }),
        comparisons=pl.DataFrame(schema={"group_id": pl.String, "item_a": pl.String, "item_b": pl.String}),
    ).write(tmp_path / "lists")  # fmt: skip
    main(["recalibrate", "--model", str(export), "--labels", str(tmp_path / "lists"), "--out", str(tmp_path / "new")])
    fusion = json.loads((tmp_path / "new" / "unirank.json").read_text())["calibration"]["recalibration"]["fusion"]
    assert fusion["first_stage_weight"] > 0 and fusion["held_out"]["fused"] > fusion["held_out"]["reranker"]
    assert Model.from_pretrained(tmp_path / "new").fusion_weight == fusion["first_stage_weight"]


def test_recalibrate_on_a_beir_folder_scores_its_first_stage_lists(export, repo, tmp_path, capsys):
    from unirank.cli import main

    main(["recalibrate", "--model", str(export), "--labels", str(repo / "data/demo-beir"), "--split", "train",
          "--depth", "10", "--out", str(tmp_path / "new")])  # fmt: skip
    record = json.loads((tmp_path / "new" / "unirank.json").read_text())["calibration"]["recalibration"]
    assert record["n"] == 12 * 10 and record["groups"] == 12 and "fusion" in record
    assert "the bi-encoder's top 10 for the judged queries of train" in capsys.readouterr().out


@pytest.fixture(scope="module")
def trained_exports(tmp_path_factory):
    """{domain: export folder} of a tiny chat and a tiny retrieval model, each trained with its head
    posterior and novelty reference (recalibrate re-anchors the reference)."""
    import lightning as L

    import unirank
    from unirank.training.export import export_model

    from .conftest import REPO

    recipes = {
        "chat": (unirank.ChatAdapter(max_length=64), unirank.Preferences(str(REPO / "data/demo-preferences.jsonl"))),
        "retrieval": (unirank.RetrievalAdapter(max_length=64), unirank.MinedBeir(str(REPO / "data/demo-beir"))),
    }
    folders = {}
    for domain, (adapter, source) in recipes.items():
        module = unirank.UnirankModule(model="tiny", adapter=adapter, schedule=unirank.Schedule(1, 1), lr=1e-3)
        L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False).fit(module, datamodule=unirank.UnirankDataModule(source))  # fmt: skip
        folders[domain] = export_model(module, tmp_path_factory.mktemp(domain) / "model")
    return folders


def labelled_chat_rows(repo, path) -> list[dict]:
    """100 labelled (prompt, response) rows from the demo preferences: chosen 1, rejected 0, and
    another prompt's chosen response 0."""
    prefs = [json.loads(line) for line in (repo / "data/demo-preferences.jsonl").read_text().splitlines()]
    text = lambda turn: turn if isinstance(turn, str) else turn[-1]["content"]  # noqa: E731
    rows = [{"context": text(p["prompt"]), "candidate": text(p[side]), "label": int(side == "chosen")}
            for p in prefs for side in ("chosen", "rejected")]  # fmt: skip
    rows += [{"context": text(p["prompt"]), "candidate": text(prefs[i - 1]["chosen"]), "label": 0}
             for i, p in enumerate(prefs[: 100 - len(rows)])]  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


@pytest.mark.parametrize("domain", ["chat", "retrieval"])
def test_what_recalibrate_writes_loads_and_scores_everywhere_a_model_does(trained_exports, domain, repo, tmp_path):
    """A recalibrated model's novelty reference is re-anchored on the labelled inputs, however many
    there are beside the training states it keeps (it was refused at load when they differed), and
    the model is read by Model.from_pretrained, `score`, `evaluate` and `select`."""
    from unirank.cli import main
    from unirank.model import Model

    export, new = trained_exports[domain], tmp_path / "new"
    if domain == "chat":
        labels, rows = tmp_path / "labels.jsonl", labelled_chat_rows(repo, tmp_path / "labels.jsonl")
        pairs = [(row["context"], row["candidate"]) for row in rows]
    else:
        labels = repo / "data/demo-beir"
    main(["recalibrate", "--model", str(export), "--labels", str(labels), "--out", str(new),
          *(["--split", "train", "--depth", "10"] if domain == "retrieval" else [])])  # fmt: skip
    labelled = json.loads((new / "unirank.json").read_text())["calibration"]["recalibration"]["n"]
    old, model = Model.from_pretrained(export), Model.from_pretrained(new)
    assert len(model.novelty.own_novelty) == labelled != len(model.novelty.states)
    np.testing.assert_array_equal(model.novelty.states, old.novelty.states)
    if domain == "chat":  # the labelled inputs sit across the re-anchored scale, not past its end
        percentiles = [row["novelty_percentile"] for row in model.score(pairs)]
        assert len(percentiles) == 100 and 0.3 < np.mean(percentiles) < 0.7
    scoring = tmp_path / "rows.jsonl"
    scoring.write_text('{"context": "How do I boil an egg?", "candidate": "Boil it for 9 minutes."}\n')
    main(["score", "--model", str(new), "--input", str(scoring), "--out", str(tmp_path / "scored.jsonl")])
    scored = json.loads((tmp_path / "scored.jsonl").read_text())
    assert 0 < scored["probability"] < 1 and scored["novelty_percentile"] is not None
    choices = tmp_path / "prompts.jsonl"
    choices.write_text('{"context": "How do I boil an egg?", "candidates": ["Boil it for 9 minutes.", "Eggs."]}\n')
    main(["select", "--model", str(new), "--input", str(choices), "--out", str(tmp_path / "selected.jsonl")])
    assert json.loads((tmp_path / "selected.jsonl").read_text())["best"]["index"] in (0, 1)
    data = ["--preferences", str(repo / "data/demo-preferences.jsonl"), "--split", "all"] if domain == "chat" else [
        "--beir", str(repo / "data/demo-beir"), "--split", "test"]  # fmt: skip
    main(["evaluate", "--model", str(new), *data, "--out", str(tmp_path / "report")])
    assert (tmp_path / "report" / "metrics.json").exists()


def calibrated_rows(export, path, seed: int = 4) -> None:
    """48 rows whose labels are drawn from the model's own σ(r): nothing to fix, and a refit on so
    few fits noise (at seed 4 its held-out ECE is 0.154 against 0.126 before)."""
    from unirank.model import Model

    words = "the quick brown fox jumps over a lazy dog while reward models score responses to prompts".split()
    rng = np.random.default_rng(seed)
    pairs = [(f"query {q}", " ".join(rng.choice(words, 8))) for q in range(8) for _ in range(6)]
    logits = Model.from_pretrained(export).score_texts(*map(list, zip(*pairs)))
    labels = (rng.random(len(logits)) < special.expit(logits)).astype(int)
    path.write_text("".join(json.dumps({"context": c, "candidate": t, "label": int(y)}) + "\n"
                            for (c, t), y in zip(pairs, labels)))  # fmt: skip


def test_a_refit_that_raises_the_held_out_ece_is_not_written_unless_forced(export, tmp_path, capsys):
    from unirank.cli import main

    calibrated_rows(export, tmp_path / "labels.jsonl")
    words = ["recalibrate", "--model", str(export), "--labels", str(tmp_path / "labels.jsonl"), "--out"]
    with pytest.raises(SystemExit, match=r"would raise the held-out ECE from 0\.1\d+ to 0\.1\d+ .*nothing written"):
        main([*words, str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()
    main([*words, str(tmp_path / "forced"), "--force", "true"])
    assert "--force: written although the held-out ECE rose" in capsys.readouterr().out
    assert (tmp_path / "forced" / "unirank.json").exists()


def test_labels_of_one_class_are_refused_before_the_model_loads(export, tmp_path):
    from unirank.cli import main

    rows = tmp_path / "labels.jsonl"
    rows.write_text("".join(json.dumps({"context": f"q{i % 4}", "candidate": f"d{i}", "label": 1}) + "\n"
                            for i in range(20)))  # fmt: skip
    with pytest.raises(SystemExit, match="every label is 1; .*both classes"):
        main(["recalibrate", "--model", str(export), "--labels", str(rows), "--out", str(tmp_path / "new")])
    assert not (tmp_path / "new").exists()


def test_a_slope_at_its_bound_is_named():
    from unirank.commands.recalibrate import slope_bound

    assert "no signal" in slope_bound(0.001) and "not determined" in slope_bound(100.0)
    assert slope_bound(1.3) is None


def test_a_refit_at_its_slope_floor_makes_the_conservative_decisions_abstain(trained_exports, repo, tmp_path):
    """Labels that run against the scores: the slope goes to its floor, every probability is the base
    rate, and the lower bound (which shrinks with the slope) would pass a threshold below the base
    rate by a hair for every candidate; now it is withheld and --conservative keeps nothing."""
    from unirank.cli import main
    from unirank.model import Model

    export = trained_exports["chat"]
    rows = labelled_chat_rows(repo, tmp_path / "rows.jsonl")
    logits = Model.from_pretrained(export).score_texts([r["context"] for r in rows], [r["candidate"] for r in rows])
    against = [dict(r, label=int(s < np.median(logits))) for r, s in zip(rows, logits)]
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in against))
    main(
        [
            "recalibrate",
            "--model",
            str(export),
            "--labels",
            str(tmp_path / "labels.jsonl"),
            "--out",
            str(tmp_path / "new"),
        ]
    )
    record = json.loads((tmp_path / "new" / "unirank.json").read_text())["calibration"]["recalibration"]
    assert record["no_signal"] and "floor" in record["slope_at_bound"]
    model = Model.from_pretrained(tmp_path / "new")
    assert not model.carries_signal and {r["probability_lower"] for r in model.score([("q", "a"), ("q", "b")])} == {
        None
    }
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"context": rows[0]["context"], "candidates": [r["candidate"] for r in rows[:6]]}) + "\n"
    )
    main(["select", "--model", str(tmp_path / "new"), "--input", str(prompts), "--out", str(tmp_path / "kept.jsonl"),
          "--threshold", "0.3", "--conservative", "true"])  # fmt: skip
    assert json.loads((tmp_path / "kept.jsonl").read_text())["kept"] == []


def test_the_fused_rankings_weight_is_kept_unless_the_refit_is_better_out_of_fold(export, tmp_path, capsys):
    """A first stage that is pure noise: the refit γ cannot beat the γ the model has beyond its interval."""
    import polars as pl

    from unirank.cli import main
    from unirank.data.tables import Tables

    rng = np.random.default_rng(2)
    words = "cells proteins genes light library catalogue index retrieval books journals".split()
    queries, size = 30, 8
    group = np.repeat([f"q{i}" for i in range(queries)], size)
    label = (rng.random(len(group)) < 0.25).astype(float)
    label[::size] = 1.0
    Tables(
        groups=pl.DataFrame({"group_id": [f"q{i}" for i in range(queries)], "context": ["a query"] * queries}),
        items=pl.DataFrame({
            "group_id": group, "item_id": [f"d{i}" for i in range(len(group))],
            "text": [" ".join(rng.choice(words, 6)) for _ in group], "label": label,
            "first_stage_score": rng.normal(0, 1, len(group)),
        }),
        comparisons=pl.DataFrame(schema={"group_id": pl.String, "item_a": pl.String, "item_b": pl.String}),
    ).write(tmp_path / "lists")  # fmt: skip
    main(["recalibrate", "--model", str(export), "--labels", str(tmp_path / "lists"), "--out", str(tmp_path / "new"),
          "--force", "true"])  # fmt: skip
    record = json.loads((tmp_path / "new" / "unirank.json").read_text())["calibration"]["recalibration"]
    assert "fusion" not in record and record["fusion_not_refitted"]["versus_current"]["interval"][0] <= 0
    assert "kept as it was" in capsys.readouterr().out


def test_labels_shallower_than_the_lists_the_model_scores_are_said(trained_exports, repo, tmp_path, capsys):
    """--depth 2 keeps many queries under a label budget, and carries the top-2 base rate to lists
    the model scores at its full depth (ECE 0.076 → 0.165 on the other queries): it is said."""
    from unirank.cli import main
    from unirank.model import Model

    export = trained_exports["retrieval"]
    depth = Model.from_pretrained(export).scorer.final_calibration["list_depth"]
    assert depth > 2
    main(["recalibrate", "--model", str(export), "--labels", str(repo / "data/demo-beir"), "--split", "train",
          "--depth", "2", "--out", str(tmp_path / "new"), "--force", "true"])  # fmt: skip
    assert (
        f"--depth 2 labels the top 2 of each list, and this model's probabilities were fitted on lists of {depth}"
        in (capsys.readouterr().out)
    )
