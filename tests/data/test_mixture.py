"""Training for breadth: a Mixture of sources is one data set (group ids prefixed per source, one
Thurstone fit across them), sampled by per-source weights, validated per source."""

import lightning as L
import numpy as np
import pytest

from unirank.adapters import ChatAdapter
from unirank.data.batching import BucketBatchSampler
from unirank.data.datamodule import UnirankDataModule
from unirank.data.mixture import Mixture
from unirank.domains.chat.source import Preferences
from unirank.fitting import fit_targets
from unirank.module import Schedule, UnirankModule

from ..conftest import REPO


def mixture(weights=None):
    return Mixture(
        [Preferences(str(REPO / "data/demo-preferences.jsonl"), validation_fraction=0.2),
         Preferences(str(REPO / "data/demo-pandalm.json"), "pandalm", validation_fraction=0.2)],
        names=["trl", "pandalm"], weights=weights,
    )  # fmt: skip


def test_the_sources_become_one_data_set_on_one_scale():
    tables = mixture().load()
    sources = tables.groups.group_by("source").len().sort("source")
    assert sources.rows() == [("pandalm", 24), ("trl", 36)]
    assert tables.groups["group_id"].str.starts_with("trl/").sum() == 36
    assert set(tables.comparisons["group_id"].str.split("/").list.first()) == {"trl", "pandalm"}
    targets, fit = fit_targets(tables.comparisons, items=tables.items)  # one fit, every item of both
    assert fit.determined and targets.height == tables.items.height


def test_sources_are_drawn_by_their_weights():
    tables = mixture(weights=[1.0, 3.0]).load()
    train = tables.split("train").groups
    weights = train["sampling_weight"].to_numpy()
    sampler = BucketBatchSampler([10] * train.height, batch_groups=4, seed=0, weights=weights)
    is_pandalm = (train["source"] == "pandalm").to_numpy()
    drawn = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        drawn += [is_pandalm[g] for batch in sampler for g, _ in batch]
    assert np.mean(drawn) == pytest.approx(0.75, abs=0.03)  # 3 : 1, whatever the sources' sizes


def test_bad_mixtures_are_refused():
    source = Preferences(str(REPO / "data/demo-preferences.jsonl"))
    with pytest.raises(ValueError, match="distinct names"):
        Mixture([source, source], names=["a", "a"])
    with pytest.raises(ValueError, match="one positive number per source"):
        Mixture([source, source], weights=[1.0, 0.0])


def test_validation_reports_each_source():
    module = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=48), schedule=Schedule(1, 0), lr=1e-3)
    data = UnirankDataModule(mixture(), batch_groups=8)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, datamodule=data)
    logged = set(trainer.callback_metrics)
    assert {"val/pairwise_accuracy", "val/trl/pairwise_accuracy", "val/pandalm/pairwise_accuracy"} <= logged
    assert set(module.group_sources.values()) == {"trl", "pandalm"}
