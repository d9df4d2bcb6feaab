"""Inputs that used to crash deep in a library (gzip, the tokenizer, faiss, polars, the file system)
now stop with the file, the line or row, and the problem; each input is built here."""

import gzip
import json

import polars as pl
import pytest

from unirank.adapters import ChatAdapter, RetrievalAdapter
from unirank.cli import main
from unirank.data.tables import TableError, Tables, validate
from unirank.domains.chat.readers import read_preferences
from unirank.domains.retrieval.readers import read_beir
from unirank.fitting import ANCHOR_ITEM

GOOD = {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}


def jsonl(*rows):
    return "".join(json.dumps(r) + "\n" for r in rows)


def truncated_gzip(path):
    data = gzip.compress(jsonl(*[GOOD] * 300).encode())
    path.with_suffix(".gz").write_bytes(data[: len(data) // 2])
    return path.with_suffix(".gz")


def written(name, text):
    def make(tmp_path):
        (tmp_path / name).write_text(text)
        return tmp_path / name

    return make


READER_CASES = [
    ("truncated gzip", truncated_gzip, r"the compressed file is truncated or corrupt"),
    ("a folder", lambda tmp: (tmp / "folder").mkdir() or tmp / "folder", r"is a folder, not a JSONL file"),
    (
        "lone surrogate",
        written("s.jsonl", '{"prompt": "a", "chosen": "x\\ud800", "rejected": "y"}\n'),
        r"line 1: a string holds a lone surrogate",
    ),  # fmt: skip
    ("null text", written("n.jsonl", jsonl({**GOOD, "chosen": None})), r"line 1: 'chosen' must be a string"),
    ("empty chosen", written("e.jsonl", jsonl({**GOOD, "chosen": "  "})), r"line 1: 'chosen' is empty"),
    (
        "unknown role",
        written("r.jsonl", jsonl({**GOOD, "prompt": [{"role": "wizard", "content": "x"}]})),
        r"line 1: 'prompt' has unknown role\(s\) \['wizard'\]",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("case", "make", "message"), READER_CASES, ids=[c[0] for c in READER_CASES])
def test_bad_preference_input_names_the_problem(tmp_path, case, make, message):
    with pytest.raises(TableError, match=message):
        read_preferences(make(tmp_path / "p.jsonl") if case == "truncated gzip" else make(tmp_path))


def test_a_beir_title_that_is_a_number_is_read_as_text(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(jsonl({"_id": "d1", "title": 1984, "text": "a novel"}))
    (tmp_path / "queries.jsonl").write_text(jsonl({"_id": "q1", "text": "orwell"}))
    (tmp_path / "qrels/train.tsv").write_text("q1\td1\t1\n")
    assert read_beir(tmp_path, "train").corpus["d1"] == "1984. a novel"


def test_the_anchor_id_is_reserved():
    tables = Tables(
        groups=pl.DataFrame({"group_id": ["g"], "context": ["q"]}),
        items=pl.DataFrame({"group_id": ["g", "g"], "item_id": ["a", ANCHOR_ITEM], "text": ["x", "y"]}),
        comparisons=pl.DataFrame({"group_id": ["g"], "item_a": ["a"], "item_b": [ANCHOR_ITEM]}),
    )
    with pytest.raises(TableError, match=rf"src \(items\), row 1: item_id '{ANCHOR_ITEM}' is reserved"):
        validate(tables, "src")


def cli_cases(repo):
    demo_prefs = str(repo / "data/demo-preferences.jsonl")
    return [
        (
            "mine --mining.k 0",
            ["mine", "--beir", str(repo / "data/demo-beir"), "--mining.k", "0", "--out", "{tmp}/m"],
            r"unirank mine: mining: k=0 must be at least 1",
        ),  # fmt: skip
        (
            "mine --out under a file",
            ["mine", "--beir", str(repo / "data/demo-beir"), "--out", "{tmp}/file/m"],
            r"cannot create its parent folder",
        ),  # fmt: skip
        (
            "targets --out a folder",
            ["targets", "--comparisons", "{tmp}/c.parquet", "--out", "{tmp}"],
            r"is a folder; give a file path",
        ),  # fmt: skip
        (
            "evaluate an empty split",
            ["evaluate", "--model", "{tmp}/model", "--preferences", demo_prefs, "--out", "{tmp}/e"],
            r"the 'test' split is empty \(groups per split: ",
        ),  # fmt: skip
        (
            "prune --out a folder, refused before any scoring",
            ["prune", "--model", "{tmp}/no-such-model", "--steps", "{tmp}/none.jsonl", "--out", "{tmp}"],
            r"is a folder; give a file path",
        ),  # fmt: skip
        (
            "prune --threshold outside (0, 1)",
            ["prune", "--model", "{tmp}/model", "--steps", "{tmp}/none.jsonl", "--threshold", "5", "--out", "{tmp}/p"],
            r"--threshold 5.0 must be a probability in \(0, 1\)",
        ),  # fmt: skip
        (
            "score an empty file",
            ["score", "--model", "{tmp}/model", "--input", "{tmp}/empty.jsonl", "--out", "{tmp}/s"],
            r"empty.jsonl: no rows to score",
        ),  # fmt: skip
    ]


CLI_CASE_IDS = ["mine-k0", "mine-out", "targets-out", "evaluate-split", "prune-out", "prune-threshold", "score-empty"]


@pytest.mark.parametrize("index", range(len(CLI_CASE_IDS)), ids=CLI_CASE_IDS)
def test_bad_command_lines_name_the_problem(repo, tmp_path, index):
    from unirank.module import UnirankModule
    from unirank.training.export import export_model

    (tmp_path / "file").write_text("x")
    (tmp_path / "empty.jsonl").write_text("")
    pl.DataFrame({"group_id": ["g"], "item_a": ["a"], "item_b": ["b"]}).write_parquet(tmp_path / "c.parquet")
    if index >= 3:
        export_model(UnirankModule(model="tiny", adapter=ChatAdapter(max_length=32)), tmp_path / "model")
    cases = cli_cases(repo)
    assert len(cases) == len(CLI_CASE_IDS)
    case, argv, message = cases[index]
    with pytest.raises(SystemExit, match=message):
        main([word.format(tmp=tmp_path) for word in argv])


@pytest.mark.parametrize("adapter", [RetrievalAdapter(max_length=16), ChatAdapter(max_length=16)])
def test_a_huge_text_is_cut_before_tokenising_to_the_same_tokens(adapter):
    from unirank.model import load_backbone

    _, tokenizer = load_backbone("tiny")
    head = "the cell divides and the membrane holds " * 20
    short = adapter.encode(tokenizer, ["what does the cell do"], [head])
    huge = adapter.encode(tokenizer, ["what does the cell do"], [head + "x" * 5_000_000])
    assert short[0].input_ids == huge[0].input_ids


def test_skip_invalid_skips_counts_and_names_the_bad_rows(tmp_path):
    path = tmp_path / "public.jsonl"
    rows = [GOOD, {**GOOD, "rejected": "4"}, {**GOOD, "prompt": "p2"}]
    path.write_text(jsonl(*rows) + "{not json\n")
    with pytest.raises(TableError, match=r"line 2: chosen and rejected are the same"):
        read_preferences(path)
    with pytest.warns(
        UserWarning, match=r"skipped 2 invalid row\(s\): .*line 2: chosen and rejected .*line 4: malformed"
    ):
        tables = read_preferences(path, skip_invalid=True)
    assert tables.comparisons.height == 2


def test_a_judgment_with_a_list_where_a_string_belongs_names_the_line(tmp_path):
    from unirank.mining.judges import read_judgments

    path = tmp_path / "answers.jsonl"
    path.write_text(jsonl({"pair_id": "g\x1fa\x1fb", "item_a": ["a"], "item_b": "b", "preferred": "a"}))
    with pytest.raises(TableError, match=r"answers.jsonl, line 1: field\(s\) \['item_a'\] must be strings"):
        read_judgments(path)
