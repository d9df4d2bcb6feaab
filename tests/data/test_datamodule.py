import warnings

import numpy as np
import polars as pl
import pytest
import torch

from unirank.adapters import ProcessAdapter, RetrievalAdapter
from unirank.data.datamodule import UnirankDataModule
from unirank.data.sources import TablesDir
from unirank.data.tables import TableError, read_tables
from unirank.data.texts import MappedTexts, map_items
from unirank.domains.process.readers import read_prmbench
from unirank.domains.retrieval.source import MinedBeir
from unirank.mining.pipeline import MiningConfig
from unirank.model import load_backbone


@pytest.fixture(scope="module")
def tokenizer():
    return load_backbone("tiny")[1]


def batches(source, tokenizer, adapter, epoch=1):
    data = UnirankDataModule(source, batch_groups=3, max_items_per_group=6)
    data.attach(tokenizer, adapter)
    data.setup("fit")
    loader = data.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return data, list(loader)


def assert_same_batches(left, right):
    assert len(left) == len(right)
    for a, b in zip(left, right):
        a, b = vars(a), vars(b)
        assert a.keys() == b.keys()
        for key in a:
            if key == "chunks":
                for x, y in zip(a[key], b[key]):
                    assert all(torch.equal(x[k], y[k]) for k in x)
            elif isinstance(a[key], torch.Tensor):
                assert torch.equal(a[key].nan_to_num(-7.0), b[key].nan_to_num(-7.0)), key
            else:
                assert a[key] == b[key], key


def test_memory_mapped_tables_give_the_same_batches(repo, tmp_path, tokenizer):
    mined = MinedBeir(
        str(repo / "data/demo-beir"), mining=MiningConfig(k=10, negatives=5, cache_dir=str(tmp_path / "cache"))
    )
    mined.load().write(tmp_path / "tables")
    adapter = RetrievalAdapter(max_length=64)
    eager, eager_batches = batches(TablesDir(str(tmp_path / "tables")), tokenizer, adapter)
    mapped, mapped_batches = batches(
        TablesDir(str(tmp_path / "tables"), memory_map=True, cache_dir=str(tmp_path / "cache")), tokenizer, adapter
    )
    assert mapped.tables.texts is not None and "text" not in mapped.tables.items.columns
    assert_same_batches(eager_batches, mapped_batches)
    assert len(list((tmp_path / "cache" / "mapped").glob("*.arrow"))) == 1


def test_process_items_stream_their_steps(shared_data, tmp_path, tokenizer):
    with warnings.catch_warnings():  # PRMBench names a few error steps past the last step
        warnings.simplefilter("ignore")
        tables = read_prmbench(shared_data / "prmbench/target_data.jsonl", 0.1, 0.2)
    small = tables.split("validation")
    small = type(small)(small.groups.with_columns(split=pl.lit("train")), small.items, small.comparisons)
    small.write(tmp_path / "steps")
    adapter = ProcessAdapter(max_length=256)
    _, eager = batches(TablesDir(str(tmp_path / "steps")), tokenizer, adapter)
    _, mapped = batches(
        TablesDir(str(tmp_path / "steps"), memory_map=True, cache_dir=str(tmp_path / "cache")), tokenizer, adapter
    )
    # every labelled step is an item of its own, read at its position in its solution's input
    steps = eager[0].positions >= 0
    assert steps.any() and (~steps).any() and not torch.isnan(eager[0].label[steps]).any()
    assert all("#step" in eager[0].item_id[i] for i in steps.nonzero().flatten().tolist())
    assert_same_batches(eager, mapped)


def test_mapped_texts_read_rows_across_record_batches(tmp_path):
    texts = [f"document {i} " + "x" * (i % 7) for i in range(2500)]
    pl.DataFrame({"group_id": ["g"] * 2500, "item_id": [str(i) for i in range(2500)], "text": texts}).write_parquet(
        tmp_path / "items.parquet", row_group_size=300
    )
    items, mapped = map_items(tmp_path / "items.parquet", tmp_path / "cache", batch_rows=300)
    assert isinstance(mapped, MappedTexts) and len(mapped._starts) > 2  # several record batches
    rows = np.array([2499, 0, 301, 299, 1200, 301])
    assert mapped.take("text", rows) == [texts[i] for i in rows]
    assert mapped.byte_lengths("text").tolist() == [len(t.encode()) for t in texts]
    assert items["_source_row"].to_list() == list(range(2500)) and "text" not in items.columns


def test_memory_mapped_items_without_text_fail_naming_the_file(tmp_path):
    pl.DataFrame({"group_id": ["g"], "context": ["q"]}).write_parquet(tmp_path / "groups.parquet")
    pl.DataFrame({"group_id": ["g"], "item_id": ["a"], "body": ["t"]}).write_parquet(tmp_path / "items.parquet")
    pl.DataFrame({"group_id": ["g"], "item_a": ["a"], "item_b": ["a"]}).write_parquet(tmp_path / "comparisons.parquet")
    with pytest.raises(TableError, match=r"items\.parquet: missing column\(s\) \['text'\]"):
        read_tables(tmp_path, memory_map=True, cache_dir=tmp_path / "cache")


def test_solutions_without_labelled_steps_are_scored_one_row_each(shared_data, tmp_path, tokenizer):
    from unirank.model import Scorer, load_backbone

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = read_prmbench(shared_data / "prmbench/target_data.jsonl", 0.0, 0.0)
    unlabelled = tables.items.with_columns(pl.lit(None, dtype=pl.List(pl.Float64)).alias("step_labels"))
    kept = unlabelled.head(12)
    groups = tables.groups.filter(pl.col("group_id").is_in(kept["group_id"].implode()))
    type(tables)(groups.with_columns(split=pl.lit("train")), kept, tables.comparisons.head(0)).write(tmp_path / "t")
    adapter = ProcessAdapter(max_length=128)
    data = UnirankDataModule(TablesDir(str(tmp_path / "t")))
    data.attach(tokenizer, adapter)
    data.setup("fit")
    train = data.datasets["train"]
    assert (train.parent < 0).all()  # no step became an item
    model, _ = load_backbone("tiny")
    scorer = Scorer(model, tokenizer, adapter).eval()
    scores, features = scorer.score_rows(train, np.arange(train.n_items), features=True)
    # one score per solution (its steps' aggregate) and, for the head posterior, no single feature row
    assert scores.shape == (train.n_items,) and np.isfinite(scores).all()
    assert features.shape[0] == train.n_items and np.isnan(features).all()


def test_a_token_budget_cuts_batches_by_tokens_not_groups():
    from unirank.data.batching import BucketBatchSampler

    tokens = [100, 900, 300, 300, 50, 700, 200, 400]
    sampler = BucketBatchSampler([int(t) for t in tokens], batch_groups=2, seed=0, batch_tokens=1000, tokens=tokens)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = [[g for g, _ in batch] for batch in sampler]
        assert sorted(g for batch in batches for g in batch) == list(range(8))  # every group once
        assert all(sum(tokens[g] for g in batch) <= 1000 for batch in batches)
        assert len(batches) == len(sampler) and any(len(batch) > 2 for batch in batches)
    with pytest.raises(ValueError, match="batch_tokens"):
        BucketBatchSampler([1], batch_groups=2, seed=0, batch_tokens=1000)


def test_a_token_budget_holds_about_that_many_tokens_per_step(repo, tokenizer):
    """Estimated from bytes at the measured tokens per byte, a step's tokens stay near the budget."""
    from unirank.adapters import ChatAdapter
    from unirank.domains.chat.source import Preferences

    data = UnirankDataModule(Preferences(str(repo / "data/demo-preferences.jsonl"), validation_fraction=0.0),
                             batch_tokens=300)  # fmt: skip
    data.attach(tokenizer, ChatAdapter(max_length=128))
    data.setup("fit")
    steps = [sum(int(c["attention_mask"].sum()) for c in batch.chunks) for batch in data.train_dataloader()]
    assert len(steps) > 36 * 2 // 16 and max(steps) <= 1.5 * 300 and np.median(steps) >= 0.5 * 300
    with pytest.raises(ValueError, match="batch_tokens=0"):
        UnirankDataModule(Preferences(str(repo / "data/demo-preferences.jsonl")), batch_tokens=0)
