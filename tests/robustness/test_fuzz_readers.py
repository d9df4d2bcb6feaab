"""Fuzzing the readers (hypothesis): random bytes, random JSON values in every field and random
parquet column types. Whatever the input, the only exception that may escape is unirank's own
input error (TableError), which names the file and the line or row."""

import json
import warnings

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unirank.data.tables import TableError, read_tables
from unirank.domains.chat.readers import read_hh_rlhf, read_pandalm, read_preferences
from unirank.domains.process.readers import read_prmbench
from unirank.domains.retrieval.readers import read_beir

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
READERS = {"trl": read_preferences, "hh": read_hh_rlhf, "pandalm": read_pandalm, "prmbench": read_prmbench}


def only_input_errors(read, path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read(path)
        except TableError as error:
            assert str(path.name) in str(error)


@pytest.mark.parametrize("reader", sorted(READERS))
@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path, reader, data):
    path = tmp_path / "input.jsonl"
    path.write_bytes(data)
    only_input_errors(READERS[reader], path)


FIELDS = {
    "trl": ["prompt", "chosen", "rejected", "category"],
    "hh": ["chosen", "rejected"],
    "prmbench": ["original_process", "modified_process", "error_steps", "classification", "question"],
}
VALID = {
    "trl": {"prompt": "p", "chosen": "a", "rejected": "b"},
    "hh": {"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: b"},
    "prmbench": {"original_process": ["s1"], "modified_process": ["s2"], "error_steps": [1], "question": "q"},
}


@pytest.mark.parametrize("reader", sorted(FIELDS))
@FUZZ
@given(data=st.data())
def test_random_json_values_in_every_field(tmp_path, reader, data):
    record = dict(VALID[reader])
    for field in FIELDS[reader]:
        if data.draw(st.booleans()):
            record[field] = data.draw(JSON)
    path = tmp_path / "input.jsonl"
    path.write_text(json.dumps(VALID[reader]) + "\n" + json.dumps(record) + "\n")
    only_input_errors(READERS[reader], path)


@FUZZ
@given(rows=st.lists(st.dictionaries(st.sampled_from(["instruction", "input", "response1", "response2",
                                                       "annotator1", "annotator2"]), JSON), max_size=3))  # fmt: skip
def test_random_pandalm_rows(tmp_path, rows):
    path = tmp_path / "pandalm.json"
    path.write_text(json.dumps(rows))
    only_input_errors(read_pandalm, path)


@FUZZ
@given(data=st.data())
def test_random_beir_records(tmp_path, data):
    (tmp_path / "qrels").mkdir(exist_ok=True)
    corpus = {"_id": data.draw(JSON), "title": data.draw(JSON), "text": data.draw(JSON)}
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d", "text": "t"}) + "\n" + json.dumps(corpus) + "\n")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "x"}) + "\n")
    (tmp_path / "qrels/train.tsv").write_text(data.draw(st.text(max_size=30)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            read_beir(tmp_path, "train")
        except TableError:
            pass


DTYPES = [pl.Int64, pl.Float64, pl.String, pl.Boolean, pl.List(pl.Int64), pl.Null]


@FUZZ
@given(data=st.data())
def test_random_parquet_column_types(tmp_path, data):
    columns = {
        "groups": {"group_id": ["g"], "context": ["q"], "split": ["train"]},
        "items": {"group_id": ["g", "g"], "item_id": ["a", "b"], "text": ["x", "y"], "label": [1.0, 0.0]},
        "comparisons": {"group_id": ["g"], "item_a": ["a"], "item_b": ["b"], "p": [1.0], "weight": [1.0]},
    }
    for name, frame in columns.items():
        table = pl.DataFrame(frame)
        column = data.draw(st.sampled_from(table.columns))
        dtype = data.draw(st.sampled_from(DTYPES))
        try:
            table = table.with_columns(pl.col(column).cast(dtype, strict=False))
        except pl.exceptions.PolarsError:
            table = table.with_columns(pl.lit(None, dtype=dtype).alias(column))
        table.write_parquet(tmp_path / f"{name}.parquet")
    try:
        read_tables(tmp_path)
    except TableError as error:
        assert str(tmp_path) in str(error)


@FUZZ
@given(
    row=st.fixed_dictionaries(
        {},
        optional={
            "context": JSON,
            "candidate": JSON,
            "candidates": JSON,
            "first_stage_score": JSON,
            "label": JSON,
        },
    ),
    candidates=st.booleans(),
)
def test_random_scoring_rows(row, candidates):
    """score / select / recalibrate rows: a checked row, or a TableError naming the line."""
    from unirank.data.values import check_scoring_row

    try:
        blank = check_scoring_row(row, "rows.jsonl, line 1", candidates=candidates)
    except TableError as error:
        assert str(error).startswith("rows.jsonl, line 1: ")
        return
    assert blank >= 0 and isinstance(row["context"], (str, list))
