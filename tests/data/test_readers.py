"""Readers and table validation: real data slices, and bad input naming file and line."""

import gzip
import json

import polars as pl
import pytest

from unirank.data.tables import TableError, Tables, validate
from unirank.domains.chat.adapter import parse_messages
from unirank.domains.chat.readers import read_hh_rlhf, read_pandalm, read_preferences
from unirank.domains.chat.source import Preferences
from unirank.domains.retrieval.readers import read_beir


def test_demo_preferences(repo):
    tables = read_preferences(repo / "data/demo-preferences.jsonl", validation_fraction=0.2)
    assert tables.groups.height == 36 and tables.items.height == 72 and tables.comparisons.height == 36
    assert set(tables.groups["split"]) == {"train", "validation"}
    assert parse_messages(tables.groups["context"][0])[0]["role"] == "user"
    assert (tables.comparisons["p"] == 1.0).all()


def test_hh_rlhf_slice_splits_prompt_from_final_turns(shared_data, tmp_path):
    lines = gzip.open(shared_data / "hh-rlhf-harmless/test.jsonl.gz", "rt").read().splitlines()[:40]
    (tmp_path / "hh.jsonl").write_text("\n".join(lines) + "\n")
    tables = read_hh_rlhf(tmp_path / "hh.jsonl")
    first = json.loads(lines[0])
    prompt = parse_messages(tables.groups["context"][0])
    assert prompt[0]["role"] == "user" and prompt[-1]["role"] == "user"
    assert first["chosen"].endswith(tables.items["text"][0])
    assert tables.comparisons.height <= 40


def test_hh_rlhf_pairs_that_part_before_the_last_turn_are_skipped_with_a_warning(shared_data, tmp_path):
    lines = gzip.open(shared_data / "hh-rlhf-harmless/test.jsonl.gz", "rt").read().splitlines()
    (tmp_path / "hh.jsonl").write_text("\n".join(lines[:3] + [lines[1254]]) + "\n")  # 1255: an inline "Human:"
    with pytest.warns(UserWarning, match=r"hh\.jsonl: line\(s\) \[4\]: chosen and rejected part before the last turn"):
        tables = read_hh_rlhf(tmp_path / "hh.jsonl")
    assert tables.comparisons.height == 3


def test_pandalm_probability_is_annotator_fraction(shared_data):
    tables = read_pandalm(shared_data / "pandalm/testset-v1.json")
    assert tables.comparisons.height > 900
    assert (tables.comparisons["weight"] == 3.0).all()
    assert set(tables.comparisons["p"].round(4).unique()) <= {0.0, 0.1667, 0.3333, 0.5, 0.6667, 0.8333, 1.0}


def test_beir_slice(shared_data):
    beir = read_beir(shared_data / "scifact", "test")
    assert len(beir.qrels) == 300 and len(beir.corpus) == 5183


def test_beir_unknown_ids_name_file_and_line(repo, tmp_path):
    import shutil

    shutil.copytree(repo / "data/demo-beir", tmp_path / "beir")
    with open(tmp_path / "beir/qrels/train.tsv", "a") as handle:
        handle.write("q01\tnope\t1\n")
    with pytest.raises(TableError, match=r"train.tsv, line 17: unknown corpus id 'nope'"):
        read_beir(tmp_path / "beir", "train")


def test_optional_columns_get_their_defaults():
    tables = Tables(
        groups=pl.DataFrame({"group_id": ["g1"], "context": ["q1"]}),
        items=pl.DataFrame({"group_id": ["g1", "g1"], "item_id": ["a", "b"], "text": ["x", "y"]}),
        comparisons=pl.DataFrame({"group_id": ["g1"], "item_a": ["a"], "item_b": ["b"]}),
    )
    checked = validate(tables, "demo")
    assert checked.comparisons.row(0, named=True) | {} == {
        "group_id": "g1",
        "item_a": "a",
        "item_b": "b",
        "p": 1.0,
        "weight": 1.0,
        "source": "data",
    }
    assert checked.groups["split"].to_list() == ["train"] and checked.items["label"].is_null().all()


def test_majority_labels_keep_the_decided_comparisons_as_hard_labels(tmp_path):
    import json

    from benchmarks.sources import MajorityPreferences
    from unirank.domains.chat.source import Preferences

    rows = [
        {"instruction": "i", "response1": "a", "response2": "b", "annotator1": 1, "annotator2": 1, "annotator3": 2},
        {"instruction": "i", "response1": "a", "response2": "c", "annotator1": 0, "annotator2": 1, "annotator3": 2},
        {"instruction": "i", "response1": "b", "response2": "c", "annotator1": 2, "annotator2": 2, "annotator3": 0},
    ]
    (tmp_path / "p.json").write_text(json.dumps(rows))
    fraction = Preferences(str(tmp_path / "p.json"), "pandalm", 0.0).load().comparisons
    majority = MajorityPreferences(str(tmp_path / "p.json"), "pandalm", 0.0).load().comparisons
    assert sorted(fraction["p"].round(4).to_list()) == [0.1667, 0.5, 0.6667]
    assert sorted(majority["p"].to_list()) == [0.0, 1.0] and majority["weight"].to_list() == [1.0, 1.0]


def test_one_group_per_comparison_copies_both_responses_and_keeps_the_prompt_split(tmp_path):
    import json

    from unirank.domains.chat.source import Preferences

    rows = [
        {"instruction": f"i{k}", "response1": "a", "response2": r, "annotator1": 1, "annotator2": 1, "annotator3": 2}
        for k in range(6)
        for r in ("b", "c")
    ]
    (tmp_path / "p.json").write_text(json.dumps(rows))
    by_prompt = Preferences(str(tmp_path / "p.json"), "pandalm", 0.3).load()
    by_pair = Preferences(str(tmp_path / "p.json"), "pandalm", 0.3, groups="comparison").load()
    assert by_prompt.groups.height == 6 and by_prompt.items.height == 18  # "a" shared by two comparisons
    assert by_pair.groups.height == by_pair.comparisons.height == 12 and by_pair.items.height == 24
    assert by_pair.items.group_by("group_id").len()["len"].to_list() == [2] * 12
    contexts = dict(zip(by_prompt.groups["group_id"], zip(by_prompt.groups["context"], by_prompt.groups["split"])))
    for pair, context, split in by_pair.groups.select("group_id", "context", "split").iter_rows():
        assert contexts[pair.split("#")[0]] == (context, split)
    assert sorted(by_pair.comparisons["p"].to_list()) == sorted(by_prompt.comparisons["p"].to_list())
    indexed = by_pair.indexed_comparisons()  # every comparison finds its two items in its own group
    assert indexed["_a"].null_count() == indexed["_b"].null_count() == 0
    with pytest.raises(ValueError, match="groups must be"):
        Preferences(str(tmp_path / "p.json"), "pandalm", groups="response")


def _prm_row(question, original, modified, errors, modified_question=None):
    row = {"question": question, "original_question": question, "original_process": original,
           "modified_process": modified, "error_steps": errors, "classification": "circular"}  # fmt: skip
    row["modified_question"] = modified_question or question
    return json.dumps(row)


def test_prmbench_outcomes_prefer_the_correct_solution_and_drop_changed_questions(tmp_path):
    right = ["2 + 2 = 4.", "So the answer is 4."]
    path = tmp_path / "prm.jsonl"
    rows = [
        _prm_row("What is 2 + 2?", right, ["2 + 2 = 5.", "So the answer is 5."], [1, 2]),
        _prm_row("What is 2 + 2?", right, ["2 + 2 = 4.", "So the answer is 22."], [2]),
        _prm_row("What is 3 + 3?", ["3 + 3 = 6."], ["3 + 3 = 7."], [1], modified_question="What is 3 + 4?"),
    ]
    path.write_text("\n".join(rows) + "\n")
    tables = Preferences(str(path), "prmbench", validation_fraction=0.0).load()
    assert tables.groups.height == 1  # the changed question's group has no comparison
    assert json.loads(tables.groups["context"][0]) == [{"role": "user", "content": "What is 2 + 2?"}]
    texts = dict(zip(tables.items["item_id"], tables.items["text"]))
    comps = tables.comparisons
    assert comps.height == 2 and set(comps["p"]) == {1.0}
    assert {texts[a] for a in comps["item_a"]} == {"2 + 2 = 4.\nSo the answer is 4."}
    wrong = {"2 + 2 = 5.\nSo the answer is 5.", "2 + 2 = 4.\nSo the answer is 22."}
    assert {texts[b] for b in comps["item_b"]} == wrong
    assert tables.items["label"].is_null().all()


def test_prmbench_outcomes_name_a_bad_row(tmp_path):
    path = tmp_path / "prm.jsonl"
    path.write_text(_prm_row("Q?", ["a"], ["b"], [1]) + "\n" + json.dumps({"question": "Q?"}) + "\n")
    with pytest.raises(TableError, match=r"prm.jsonl, line 2: missing field"):
        Preferences(str(path), "prmbench").load()
