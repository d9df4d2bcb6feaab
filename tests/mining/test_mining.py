"""Mining on the demo BEIR folder: candidates, filters, pairs, labels, cache."""

import json

import numpy as np
import polars as pl
import pytest

from unirank.cli import main
from unirank.data.tables import TableError
from unirank.fitting import ANCHOR_ITEM
from unirank.mining.filters import select_negatives
from unirank.mining.pairs import label_pairs
from unirank.mining.pipeline import MiningConfig, mine_beir
from unirank.mining.search import build_index, search


def test_select_negatives_drops_positives_and_likely_false_negatives():
    hits = ["pos", "near", "judged_irrelevant", "far", "farther"]
    scores = np.array([0.9, 0.87, 0.6, 0.5, 0.4])
    chosen = select_negatives(hits, scores, {"pos": 1, "judged_irrelevant": 0}, np.array([0.9]), count=2)
    # 0.87 >= 0.95 × 0.9 is a likely false negative; a judged-irrelevant document is a true negative
    assert [doc for doc, _, _ in chosen] == ["judged_irrelevant", "far"]
    assert [d for d, _, _ in select_negatives(hits, scores, {"pos": 1}, np.array([0.9]), count=5, range_min=3)] == [
        "far",
        "farther",
    ]


def test_label_pairs_prefers_the_higher_grade_and_covers_positive_pairs():
    grades = [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    pairs = label_pairs(grades, k=2, all_positive_pairs=True, seed=0)
    labels = {(i, j): p for i, j, p in pairs}
    assert all(labels[(0, j)] == 1.0 for j in range(1, 12))
    assert all(p == 0.5 for (i, j), p in labels.items() if grades[i] == grades[j])


def test_batched_search_equals_one_shot_exact_search():
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(500, 16)).astype(np.float32)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    index = build_index(docs, "flat")
    scores, rows = search(index, queries, k=10, batch_size=8)
    np.testing.assert_array_equal(rows, np.argsort(-(queries @ docs.T), axis=1)[:, :10])


def test_mine_demo_beir(repo, tmp_path):
    config = MiningConfig(k=10, negatives=4, cache_dir=str(tmp_path / "cache"), show_progress_bar=False)
    tables, summary = mine_beir(repo / "data/demo-beir", "train", config)
    assert summary["queries"] == 12 and summary["index"]["kind"] == "flat"
    assert 0.5 < summary["recall@10"] <= 1.0
    positives = tables.items.filter(pl.col("label") == 1.0)
    assert positives.height == 15  # every judged positive of the train qrels is a candidate
    per_query = tables.items.group_by("group_id").len()
    assert per_query["len"].max() <= 2 + 4
    assert ANCHOR_ITEM not in tables.comparisons["item_b"].to_list()
    # the cache: a second run reads the vectors instead of encoding
    assert len(list((tmp_path / "cache/embeddings").glob("*.npy"))) == 2
    again, _ = mine_beir(repo / "data/demo-beir", "train", config)
    assert again.items.equals(tables.items)


def test_mine_command_writes_tables_and_summary(repo, tmp_path):
    main(
        [
            "mine",
            "--beir",
            str(repo / "data/demo-beir"),
            "--split",
            "test",
            "--mining.k",
            "5",
            "--mining.negatives",
            "3",
            "--mining.cache_dir",
            str(tmp_path / "cache"),
            "--out",
            str(tmp_path / "mined"),
        ]
    )
    summary = json.loads((tmp_path / "mined/mining.json").read_text())
    assert summary["split"] == "test" and "recall@5" in summary
    assert {p.name for p in (tmp_path / "mined").iterdir()} == {
        "groups.parquet",
        "items.parquet",
        "comparisons.parquet",
        "mining.json",
        "qrels.tsv",
    }


def test_mining_bad_beir_names_the_file(repo, tmp_path):
    (tmp_path / "beir/qrels").mkdir(parents=True)
    (tmp_path / "beir/corpus.jsonl").write_text('{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "y"}\n')
    (tmp_path / "beir/queries.jsonl").write_text('{"_id": "q1", "text": "x"}\n')
    with pytest.raises(SystemExit, match=r"corpus.jsonl, line 2: duplicate id 'd1'"):
        main(["mine", "--beir", str(tmp_path / "beir"), "--out", str(tmp_path / "o")])


@pytest.fixture
def mined(repo, tmp_path):
    """The demo BEIR train split mined (k=10, 3 negatives) and written to tmp_path/mined."""
    config = MiningConfig(k=10, negatives=3, cache_dir=str(tmp_path / "cache"), show_progress_bar=False)
    tables, _ = mine_beir(repo / "data/demo-beir", "train", config)
    tables.write(tmp_path / "mined")
    return tables


def import_judgments(tmp_path):
    main(["judge", "import", "--tables", str(tmp_path / "mined"), "--judgments", str(tmp_path / "answers.jsonl"),
          "--out", str(tmp_path / "judged")])  # fmt: skip


def test_external_judges_round_trip(mined, tmp_path):
    main(["judge", "requests", "--tables", str(tmp_path / "mined"), "--out", str(tmp_path / "requests.jsonl")])
    requests = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert len(requests) == mined.comparisons.height
    assert any(r["item_a"] != r["pair_id"].split("\x1f")[1] for r in requests)  # shown order is randomised
    # three judges: two prefer the shown first text, one calls a tie
    answers = [
        {"pair_id": r["pair_id"], "item_a": r["item_a"], "item_b": r["item_b"], "preferred": v}
        for r in requests
        for v in ("a", "a", "tie")
    ]
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    import_judgments(tmp_path)
    judged = pl.read_parquet(tmp_path / "judged/comparisons.parquet")
    shown_first = {r["pair_id"].split("\x1f")[1] == r["item_a"] for r in requests}
    assert (judged["weight"] == 3.0).all() and shown_first == {True, False}
    # p is P(the pair's own item_a wins): 5/6 where it was shown first, 1/6 where it was shown second
    expected = {
        tuple(r["pair_id"].split("\x1f")): 5 / 6 if r["pair_id"].split("\x1f")[1] == r["item_a"] else 1 / 6
        for r in requests
    }
    got = {(g, a, b): p for g, a, b, p in judged.select("group_id", "item_a", "item_b", "p").iter_rows()}
    assert got.keys() == expected.keys()
    assert all(abs(got[k] - expected[k]) < 1e-9 for k in expected)


def test_bad_judgment_names_the_line(mined, tmp_path):
    (tmp_path / "answers.jsonl").write_text('{"pair_id": "x", "item_a": "a", "item_b": "b", "preferred": "a"}\n')
    with pytest.raises(SystemExit, match=r"answers.jsonl, line 1: pair_id 'x' is not one of the requests"):
        import_judgments(tmp_path)


def test_teacher_labels_are_soft_probabilities(mined):
    from unirank.mining.judges import teacher_comparisons

    tables = mined
    lengths = {t: float(len(t)) for t in tables.items["text"]}
    labelled = teacher_comparisons(tables, lambda contexts, texts: np.array([lengths[t] / 50 for t in texts]))
    first = labelled.row(0, named=True)
    texts = dict(zip(tables.items["item_id"], tables.items["text"]))
    margin = (lengths[texts[first["item_a"]]] - lengths[texts[first["item_b"]]]) / 50
    assert first["p"] == pytest.approx(1 / (1 + np.exp(-margin)))
    assert labelled.height == tables.comparisons.height and (labelled["source"] == "teacher").all()


def test_sharded_encoding_resumes_at_the_first_missing_shard(tmp_path):
    from unirank.mining.encode import Encoder

    class Counting:  # stands in for a SentenceTransformer
        prompts = {}
        device = "cpu"
        encoded = 0

        def encode(self, texts, **kwargs):
            Counting.encoded += len(texts)
            return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)

    encoder = Encoder(path="fake", _model=Counting())
    texts = [f"text {i}" * (i + 1) for i in range(25)]
    first = encoder.encode(texts, cache_dir=tmp_path, shard_size=10)
    assert Counting.encoded == 25 and len(list(tmp_path.glob("*.npy"))) == 3
    lost = next(iter(tmp_path.glob("*.npy")))
    lost_rows = len(np.load(lost))
    lost.unlink()  # as if the run had been killed before this shard was written
    again = encoder.encode(texts, cache_dir=tmp_path, shard_size=10)
    assert Counting.encoded == 25 + lost_rows  # only the missing shard was encoded again
    np.testing.assert_array_equal(first, again)


def test_every_mining_setting_is_a_mine_option_and_a_yaml_key(tmp_path, monkeypatch):
    from dataclasses import fields

    seen = []  # the MiningConfig the command hands to mining, which then stops
    monkeypatch.setattr("unirank.mining.pipeline.mine_beir", lambda beir, split, config: seen.append(config) or 1 / 0)
    base = ["mine", "--beir", "b", "--out", str(tmp_path / "o")]
    with pytest.raises(ZeroDivisionError):
        main(base)
    assert seen[-1] == MiningConfig()  # the dataclass's own defaults
    with pytest.raises(ZeroDivisionError):
        main([*base, "--mining.precision", "fp32", "--mining.index", "hnsw", "--mining.absolute-margin", "0.1",
              "--mining.range_min", "2", "--mining.all_positive_pairs", "false", "--mining.batch_size", "8",
              "--mining.seed", "3", "--mining.show_progress_bar", "false",
              "--mining.keep_ranking", "true"])  # fmt: skip
    config = seen[-1]
    assert (config.precision, config.index, config.absolute_margin, config.range_min) == ("fp32", "hnsw", 0.1, 2)
    assert not config.all_positive_pairs and config.batch_size == 8 and config.seed == 3
    assert not config.show_progress_bar and config.keep_ranking
    every = {f.name: getattr(MiningConfig(), f.name) for f in fields(MiningConfig)}
    every |= {"k": 9, "negatives": 2, "candidates": "top_k", "unjudged_weight": 0.5, "cache_dir": None}
    (tmp_path / "mine.yaml").write_text(json.dumps({"split": "test", "mining": every}))  # JSON is YAML
    with pytest.raises(ZeroDivisionError):
        main(["mine", "--config", str(tmp_path / "mine.yaml"), "--beir", "b", "--out", str(tmp_path / "o")])
    assert seen[-1] == MiningConfig(**every)


def judge_all(mined, tmp_path):
    """Requests for the mined folder, one judge each preferring the first text; imported into tmp_path/judged."""
    main(["judge", "requests", "--tables", str(tmp_path / "mined"), "--out", str(tmp_path / "requests.jsonl")])
    requests = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    answers = [
        {"pair_id": r["pair_id"], "item_a": r["item_a"], "item_b": r["item_b"], "preferred": "a"} for r in requests
    ]
    (tmp_path / "answers.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    import_judgments(tmp_path)


def test_a_judge_write_killed_between_tables_leaves_the_old_labelled_folder_whole(mined, tmp_path, monkeypatch):
    from unirank.data.tables import Tables

    judge_all(mined, tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "judged").iterdir()}
    assert "judged.json" in before

    def dies_after_items(self, directory):
        pl.DataFrame({"x": [1]}).write_parquet(f"{directory}/items.parquet")
        raise KeyboardInterrupt  # killed between two tables

    monkeypatch.setattr(Tables, "write", dies_after_items)
    with pytest.raises(KeyboardInterrupt):
        import_judgments(tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "judged").iterdir()} == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".judged")] == []


def test_judge_never_replaces_a_folder_it_did_not_write(mined, tmp_path):
    (tmp_path / "judged").mkdir()
    (tmp_path / "judged" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"judged: holds files that are not a labelled folder"):
        judge_all(mined, tmp_path)
    assert [p.name for p in (tmp_path / "judged").iterdir()] == ["notes.txt"]


def test_queries_whose_grades_are_all_zero_are_left_out_and_counted(repo, tmp_path):
    import shutil

    shutil.copytree(repo / "data/demo-beir", tmp_path / "beir")
    qrels = tmp_path / "beir/qrels/train.tsv"
    lines = qrels.read_text().splitlines()
    zeroed = [line.rsplit("\t", 1)[0] + "\t0" if line.startswith("q01\t") else line for line in lines]
    qrels.write_text("\n".join(zeroed) + "\n")
    config = MiningConfig(k=5, negatives=2, cache_dir=str(tmp_path / "cache"), show_progress_bar=False)
    with pytest.warns(UserWarning, match=r"1 of 12 judged queries have no relevant document .*'q01'"):
        tables, summary = mine_beir(tmp_path / "beir", "train", config)
    assert "q01" not in tables.groups["group_id"].to_list() and summary["queries_without_relevant"] == 1
    qrels.write_text("\n".join(line.rsplit("\t", 1)[0] + "\t0" for line in lines[1:]) + "\n")
    with pytest.raises(TableError, match=r"none of the 12 judged queries of split 'train' has a relevant document"):
        mine_beir(tmp_path / "beir", "train", config)


def test_mine_and_evaluate_report_one_recall(repo, tmp_path):
    """recall@k is the mean over queries (ir-measures' R@k) in both; the pooled share is named as such."""
    from dataclasses import replace

    from unirank.domains.retrieval.evaluation import evaluate_retrieval
    from unirank.domains.retrieval.readers import read_beir

    config = replace(MiningConfig(k=5, cache_dir=str(tmp_path / "cache"), show_progress_bar=False), keep_ranking=True)
    ranked, summary = mine_beir(repo / "data/demo-beir", "train", config)
    report = evaluate_retrieval({}, ranked, read_beir(repo / "data/demo-beir", "train").qrels)
    assert summary["recall@5"] == pytest.approx(report["systems"]["first stage"]["recall@5"])
    assert "recall@5_pooled" in summary
