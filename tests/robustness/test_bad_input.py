"""A table of malformed inputs: each gives a clear error naming file and line/row, or a documented,
tested handling. Never a crash deep in a stack, never a silent wrong number."""

import json

import lightning as L
import numpy as np
import polars as pl
import pytest
import torch

from unirank.atomic import atomic_path, write_parquet
from unirank.data.tables import TableError, Tables, read_tables
from unirank.domains.chat.readers import read_preferences
from unirank.fitting import fit_targets

GOOD = {"prompt": "What is 2+2?", "chosen": "4", "rejected": "5"}


def jsonl(*rows):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


PREFERENCE_CASES = [
    ("truncated JSONL", jsonl(GOOD) + '{"prompt": "x", "cho', r"line 2: malformed JSON"),
    ("wrong type", jsonl(GOOD, {**GOOD, "prompt": 7}), r"line 2: 'prompt' must be a string or a list"),
    ("missing field", jsonl(GOOD, {"prompt": "x", "chosen": "y"}), r"line 2: missing field 'rejected'"),
    ("not an object", jsonl(GOOD, [1, 2]), r"line 2: expected a JSON object"),
    ("same response twice", jsonl(GOOD, {**GOOD, "rejected": "4"}), r"line 2: chosen and rejected are the same"),
    ("empty file", "", r"no records"),
]


@pytest.mark.parametrize(("case", "content", "message"), PREFERENCE_CASES, ids=[c[0] for c in PREFERENCE_CASES])
def test_bad_preference_files(tmp_path, case, content, message):
    path = tmp_path / "prefs.jsonl"
    path.write_text(content)
    with pytest.raises(TableError, match=rf"prefs.jsonl.*{message}"):
        read_preferences(path)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_bytes(jsonl(GOOD, GOOD).encode() + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n')
    with pytest.raises(TableError, match=r"prefs.jsonl, line 3: not valid UTF-8"):
        read_preferences(path)


def test_a_10_mb_single_line_is_read(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text(jsonl({**GOOD, "chosen": "long " * 2_000_000}, GOOD))
    tables = read_preferences(path)
    assert tables.items["text"].str.len_chars().max() == 10_000_000


def base_tables():
    return Tables(
        groups=pl.DataFrame({"group_id": ["g1", "g2"], "context": ["q1", "q2"]}),
        items=pl.DataFrame({"group_id": ["g1", "g1", "g2"], "item_id": ["a", "b", "c"], "text": ["x", "y", "z"]}),
        comparisons=pl.DataFrame({"group_id": ["g1"], "item_a": ["a"], "item_b": ["b"], "p": [0.8]}),
    )


def replace(**frames):
    t = base_tables()
    return Tables(
        frames.get("groups", t.groups), frames.get("items", t.items), frames.get("comparisons", t.comparisons)
    )


TABLE_CASES = [
    ("missing column", lambda: replace(items=base_tables().items.drop("text")), r"missing column\(s\) \['text'\]"),
    (
        "wrong type",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit("high").alias("p"))),
        r"p has type String: it must hold numbers",
    ),
    (
        "p as a numeric string",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit("0.8").alias("p"))),
        r"p has type String: it must hold numbers",
    ),
    (
        "p as a boolean",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit(True).alias("p"))),
        r"p has type Boolean",
    ),
    (
        "huge weight",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit(1e300).alias("weight"))),
        r"row 0: weight=1e\+300 is not a finite number in \(0, 1e\+06\]",
    ),
    (
        "infinite first-stage score",
        lambda: replace(
            items=base_tables().items.with_columns(pl.Series("first_stage_score", [0.1, float("inf"), 0.2]))
        ),
        r"\(items\), row 1: first_stage_score=inf is not finite",
    ),
    (
        "label as a string",
        lambda: replace(items=base_tables().items.with_columns(pl.lit("1").alias("label"))),
        r"label has type String",
    ),
    (
        "unknown id",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit("zz").alias("item_a"))),
        r"row 0: item_a names an unknown item 'zz'",
    ),
    (
        "duplicate id",
        lambda: replace(items=pl.concat([base_tables().items, base_tables().items[2:]])),
        r"row 3: duplicate id 'c'",
    ),
    (
        "p out of range",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit(-0.1).alias("p"))),
        r"row 0: p=-0.1 is not a probability",
    ),
    (
        "NaN p",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit(float("nan")).alias("p"))),
        r"row 0: p=nan is not a probability",
    ),
    (
        "NaN weight",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit(float("nan")).alias("weight"))),
        r"row 0: weight=nan is not a finite number",
    ),
    (
        "empty group",
        lambda: replace(groups=pl.DataFrame({"group_id": ["g1", "g2", "g3"], "context": ["a", "b", "c"]})),
        r"row 2: group 'g3' has no items",
    ),
    (
        "null id",
        lambda: replace(items=base_tables().items.with_columns(pl.Series("item_id", ["a", None, "c"]))),
        r"row 1: item_id is missing",
    ),
    (
        "self comparison",
        lambda: replace(comparisons=base_tables().comparisons.with_columns(pl.lit("a").alias("item_b"))),
        r"row 0: item 'a' is compared with itself",
    ),
]


@pytest.mark.parametrize(("case", "build", "message"), TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_bad_tables(tmp_path, case, build, message):
    build().write(tmp_path)
    with pytest.raises(TableError, match=message):
        read_tables(tmp_path)


def test_all_ties_whitespace_twins_and_empty_texts_are_warned_with_their_count(tmp_path):
    tables = replace(
        items=base_tables().items.with_columns(pl.Series("text", ["same  text", "same text\n", " "])),
        comparisons=base_tables().comparisons.with_columns(pl.lit(0.5).alias("p")),
    )
    tables.write(tmp_path)
    with pytest.warns(UserWarning) as caught:
        read_tables(tmp_path)
    messages = " | ".join(str(w.message) for w in caught)
    assert "all 1 comparisons are ties" in messages
    assert "1 comparison(s) between texts that differ in white space only" in messages
    assert "1 item(s) with an empty text (the first: row 2, 'c')" in messages


def test_a_group_with_one_item_is_kept_and_gets_its_prior():
    """Documented handling: a one-item group has no comparison; its item's target is Φ(prior) = 0.5."""
    tables = read_tables_from(base_tables())
    targets, _ = fit_targets(tables.comparisons, items=tables.items)
    lonely = targets.filter(pl.col("group_id") == "g2").row(0, named=True)
    assert lonely["latent"] == 0.0 and lonely["target"] == 0.5


def test_all_tie_comparisons_give_equal_targets():
    """Documented handling: ties are evidence of equality, not an error."""
    ties = pl.DataFrame({"group_id": ["g"] * 3, "item_a": ["a", "b", "a"], "item_b": ["b", "c", "c"], "p": [0.5] * 3})
    targets, fit = fit_targets(ties)
    assert fit.converged and np.allclose(targets["target"], 0.5)


def read_tables_from(tables, tmp=None):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        tables.write(folder)
        return read_tables(folder)


def test_a_killed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "t.parquet"
    write_parquet(pl.DataFrame({"x": [1]}), path)
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_bytes(b"PAR1 half a file")
        raise RuntimeError("killed mid-write")
    assert pl.read_parquet(path)["x"].to_list() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


def test_nan_loss_stops_training_naming_the_batch(repo, tmp_path):
    from unirank.adapters import ChatAdapter
    from unirank.data.datamodule import UnirankDataModule
    from unirank.domains.chat.source import Preferences
    from unirank.module import Schedule, UnirankModule

    module = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=48), schedule=Schedule(1, 0))
    with torch.no_grad():
        module.scorer.model.classifier.weight.fill_(float("nan"))
    data = UnirankDataModule(Preferences(str(repo / "data/demo-preferences.jsonl")), batch_groups=8)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(FloatingPointError, match=r"non-finite pairwise loss \(nan\) at epoch 0, batch 0"):
        trainer.fit(module, datamodule=data)


def test_bf16_autocast_scores_match_fp32():
    from unirank.adapters import RetrievalAdapter
    from unirank.module import UnirankModule

    module = UnirankModule(model="tiny", adapter=RetrievalAdapter(max_length=64))
    contexts, docs = ["why is the sky blue"] * 3, ["air scatters blue light", "cheese is made of milk", "bees dance"]
    fp32 = module.scorer.score_texts(contexts, docs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = module.scorer.score_texts(contexts, docs)
    np.testing.assert_allclose(bf16, fp32, atol=0.05)
    assert not np.array_equal(bf16, fp32)  # autocast really ran in bf16
    np.testing.assert_array_equal(module.scorer.score_texts(contexts, docs, bf16=True), bf16)  # the scoring option
