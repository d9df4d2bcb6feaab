"""Readers and table validation: real data slices, and bad input naming file and line."""

import gzip
import json

import polars as pl
import pytest

from unirank.adapters.chat import parse_messages
from unirank.data.readers import read_beir, read_hh_rlhf, read_pandalm, read_preferences
from unirank.data.tables import TableError, Tables, read_tables, validate


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


def test_pandalm_probability_is_annotator_fraction(shared_data):
    tables = read_pandalm(shared_data / "pandalm/testset-v1.json")
    assert tables.comparisons.height > 900
    assert (tables.comparisons["weight"] == 3.0).all()
    assert set(tables.comparisons["p"].round(4).unique()) <= {0.0, 0.1667, 0.3333, 0.5, 0.6667, 0.8333, 1.0}


def test_beir_slice(shared_data):
    beir = read_beir(shared_data / "scifact", "test")
    assert len(beir.qrels) == 300 and len(beir.corpus) == 5183


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "chosen": \n', r"line 2: malformed JSON"),
        ('{"prompt": "a", "chosen": "b"}\n', r"line 1: missing field 'rejected'"),
        ('{"prompt": "a", "chosen": 3, "rejected": "c"}\n', r"line 1: 'chosen' must be a string or a list"),
        ('[1, 2]\n', r"line 1: expected a JSON object"),
    ],
)
def test_bad_preference_lines_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "prefs.jsonl"
    path.write_text(content)
    with pytest.raises(TableError, match=rf"prefs.jsonl, {message}"):
        read_preferences(path)


def test_non_utf8_names_the_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "\xff\xfe"}\n')
    with pytest.raises(TableError, match="prefs.jsonl, line 2: not valid UTF-8"):
        read_preferences(path)


def test_beir_unknown_ids_name_file_and_line(repo, tmp_path):
    import shutil

    shutil.copytree(repo / "data/demo-beir", tmp_path / "beir")
    with open(tmp_path / "beir/qrels/train.tsv", "a") as handle:
        handle.write("q01\tnope\t1\n")
    with pytest.raises(TableError, match=r"train.tsv, line 17: unknown corpus id 'nope'"):
        read_beir(tmp_path / "beir", "train")


def good_tables():
    return Tables(
        groups=pl.DataFrame({"group_id": ["g1", "g2"], "context": ["q1", "q2"]}),
        items=pl.DataFrame({"group_id": ["g1", "g1", "g2"], "item_id": ["a", "b", "c"], "text": ["x", "y", "z"]}),
        comparisons=pl.DataFrame({"group_id": ["g1"], "item_a": ["a"], "item_b": ["b"], "p": [0.8]}),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: Tables(t.groups, t.items.drop("text"), t.comparisons), r"\(items\): missing column\(s\) \['text'\]"),
        (lambda t: Tables(t.groups, t.items, t.comparisons.with_columns(pl.lit("zz").alias("item_b"))),
         r"\(comparisons\), row 0: item_b names an unknown item 'zz'"),
        (lambda t: Tables(t.groups, t.items, t.comparisons.with_columns(pl.lit(1.2).alias("p"))),
         r"\(comparisons\), row 0: p=1.2 is not a probability"),
        (lambda t: Tables(pl.concat([t.groups, pl.DataFrame({"group_id": ["g3"], "context": ["q3"]})]), t.items,
                          t.comparisons), r"\(groups\), row 2: group 'g3' has no items"),
        (lambda t: Tables(t.groups, pl.concat([t.items, t.items[:1]]), t.comparisons),
         r"\(items\), row 3: duplicate id 'a'"),
    ],
)
def test_bad_tables_name_source_row_and_problem(tmp_path, change, message):
    tables = change(good_tables())
    tables.write(tmp_path)
    with pytest.raises(TableError, match=message):
        read_tables(tmp_path)
    assert validate(good_tables(), "ok").comparisons["weight"].to_list() == [1.0]
