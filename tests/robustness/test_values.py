"""Values checked where they enter: the rows of score / select / recalibrate, and the fields of the
readers that a boolean, a number or a blank could slip through. Each bad value is named with its
file, line and field; degenerate but valid data is kept and counted in one warning."""

import json

import pytest

from unirank.cli import main
from unirank.data.tables import TableError
from unirank.data.values import check_scoring_row
from unirank.domains.chat.readers import read_hh_rlhf, read_pandalm, read_preferences
from unirank.domains.process.readers import read_prmbench
from unirank.domains.retrieval.readers import read_beir

GOOD = {"context": "a query", "candidate": "a document"}
FIRST_STAGE = "'first_stage_score' must be a finite number,"
ROWS = {
    "a number as context": ({**GOOD, "context": 7}, r"'context' must be a string or a list of \{role, content\}"),
    "numbers as messages": ({**GOOD, "context": [1, 2]}, r"'context' must be a string or a list"),
    "a message without content": ({**GOOD, "context": [{"role": "user"}]}, r"'context' must be a string or a list"),
    "a number as content": ({**GOOD, "context": [{"role": "user", "content": 3}]}, r"'context' must be a string"),
    "an unknown role": ({**GOOD, "context": [{"role": "bot", "content": "hi"}]}, r"'context' has unknown role"),
    "a blank context": ({**GOOD, "context": "  \n"}, r"'context' is empty"),
    "no candidate": ({"context": "q"}, r"'candidate' must be a string, got NoneType"),
    "a list as candidate": ({**GOOD, "candidate": ["a"]}, r"'candidate' must be a string, got list"),
    "a NaN first-stage score": ({**GOOD, "first_stage_score": float("nan")}, rf"{FIRST_STAGE} got nan"),
    "an infinite first-stage score": ({**GOOD, "first_stage_score": float("inf")}, rf"{FIRST_STAGE} got inf"),
    "a boolean first-stage score": ({**GOOD, "first_stage_score": True}, rf"{FIRST_STAGE} got True"),
    "a string first-stage score": ({**GOOD, "first_stage_score": "0.3"}, rf"{FIRST_STAGE} got '0.3'"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(ROWS))
def test_a_bad_scoring_row_is_named(case):
    row, message = ROWS[case]
    with pytest.raises(TableError, match=rf"rows\.jsonl, line 3: {message}"):
        check_scoring_row(row, "rows.jsonl, line 3")


def test_select_rows_need_a_list_of_strings():
    for candidates in ([], ["a", 1], "a", None):
        with pytest.raises(TableError, match=r"'candidates' must be a non-empty list of strings"):
            check_scoring_row({"context": "q", "candidates": candidates}, "lists.jsonl, line 1", candidates=True)
    assert check_scoring_row({"context": "q", "candidates": ["a", " "]}, "x", candidates=True) == 1  # counted


def test_score_names_the_bad_row_before_loading_any_model(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "first_stage_score": float("nan")}) + "\n")
    with pytest.raises(SystemExit, match=r"unirank score: .*rows\.jsonl, line 2: 'first_stage_score'"):
        main(["score", "--model", str(tmp_path / "no-model"), "--input", str(rows), "--out", str(tmp_path / "o")])


def test_recalibrate_labels_are_probabilities_not_booleans(tmp_path):
    from unirank.commands.recalibrate import _labelled_rows

    labels = tmp_path / "labels.jsonl"
    for value, message in ((True, "got True"), ("1", "got '1'"), (1.5, r"within \[0, 1\]")):
        labels.write_text(json.dumps({**GOOD, "label": value}) + "\n")
        with pytest.raises(TableError, match=rf"labels\.jsonl, line 1: 'label' must be .*{message}"):
            _labelled_rows(labels)


def write_jsonl(path, *rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pandalm_votes_that_are_booleans_are_refused(tmp_path):
    row = {"instruction": "q", "input": "", "response1": "a", "response2": "b"}
    path = tmp_path / "pandalm.json"
    path.write_text(json.dumps([{**row, "annotator1": True, "annotator2": 1, "annotator3": 2}]))
    with pytest.raises(TableError, match=r"row 0: annotator labels must be 0 \(tie\), 1 or 2, got \[True, 1, 2\]"):
        read_pandalm(path)


def test_pandalm_and_hh_pairs_equal_up_to_white_space_are_skipped_and_counted(tmp_path):
    row = {"instruction": "q", "input": "", "annotator1": 1, "annotator2": 1, "annotator3": 2}
    path = tmp_path / "pandalm.json"
    pairs = [("a  b", "a b\n"), ("c", "d"), ("e", " e")]
    path.write_text(json.dumps([{**row, "response1": r1, "response2": r2} for r1, r2 in pairs]))
    with pytest.warns(UserWarning, match=r"2 pair\(s\) whose two responses are the same up to white space.*rows 0, 2"):
        assert read_pandalm(path).comparisons.height == 1
    dialogue = "\n\nHuman: hi\n\nAssistant: "
    hh = write_jsonl(
        tmp_path / "hh.jsonl",
        {"chosen": dialogue + "yes", "rejected": dialogue + "no"},
        {"chosen": dialogue + "same  words", "rejected": dialogue + "same words"},
    )
    with pytest.warns(UserWarning, match=r"1 pair\(s\) whose two responses are the same.*lines 2"):
        assert read_hh_rlhf(hh).comparisons.height == 1


def test_trl_pairs_equal_up_to_white_space_are_refused(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", {"prompt": "q", "chosen": "an answer", "rejected": "an  answer\n"})
    with pytest.raises(TableError, match=r"line 1: chosen and rejected are the same response \(up to white space\)"):
        read_preferences(path)


def test_a_boolean_error_step_is_not_read_as_step_one(tmp_path):
    row = {"original_process": ["a", "b"], "modified_process": ["a", "c"], "error_steps": [True], "question": "q"}
    with pytest.raises(TableError, match=r"line 1: error_steps must be a list of step numbers >= 1, got \[True\]"):
        read_prmbench(write_jsonl(tmp_path / "steps.jsonl", row))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"_id": True, "text": "x"}, r"'_id' must be a string or an integer, got True"),
        ({"_id": "d2", "text": "x", "title": ["a", "list"]}, r"'title' must be a string, got list"),
        ({"_id": "d2", "text": " ", "title": ""}, r"'d2' has no text and no title"),
    ],
)
def test_bad_beir_documents_are_named_by_line(tmp_path, record, message):
    (tmp_path / "qrels").mkdir()
    write_jsonl(tmp_path / "corpus.jsonl", {"_id": "d1", "text": "a document"}, record)
    write_jsonl(tmp_path / "queries.jsonl", {"_id": "q1", "text": "a query"})
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\n")
    with pytest.raises(TableError, match=rf"corpus\.jsonl, line 2: {message}"):
        read_beir(tmp_path, "test", strict=True)


def test_documents_with_neither_text_nor_title_are_skipped_with_their_qrels_in_one_warning(tmp_path):
    """Cranfield has two such documents; reading stopped at the first (mining.strict keeps that)."""
    (tmp_path / "qrels").mkdir()
    write_jsonl(tmp_path / "corpus.jsonl", {"_id": "d1", "text": "a document"}, {"_id": "d2", "text": " "},
                {"_id": "d3", "text": "", "title": ""})  # fmt: skip
    write_jsonl(tmp_path / "queries.jsonl", {"_id": "q1", "text": "a query"}, {"_id": "q2", "text": "another"})
    (tmp_path / "qrels" / "test.tsv").write_text("q1\td1\t1\nq1\td2\t1\nq2\td3\t1\n")
    with pytest.warns(UserWarning, match=r"2 documents with neither text nor title skipped .*with the 2 qrels"):
        data = read_beir(tmp_path, "test")
    assert sorted(data.corpus) == ["d1"] and data.qrels == {"q1": {"d1": 1}}
