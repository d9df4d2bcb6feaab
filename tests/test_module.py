"""The two-stage LightningModule on a tiny in-process BERT and the demo preferences."""

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from unirank.adapters import ChatAdapter
from unirank.data.datamodule import UnirankDataModule
from unirank.domains.chat.source import Preferences
from unirank.fitting import anchor_comparisons, fit_targets
from unirank.losses import comparison_loss
from unirank.module import Calibration, Schedule, UnirankModule


def make(repo, schedule=Schedule(1, 1), calibration=Calibration(), lr=1e-3):
    module = UnirankModule(
        model="tiny",
        adapter=ChatAdapter(max_length=64),
        schedule=schedule,
        calibration=calibration,
        lr=lr,
        head_lr=lr,
        warmup_ratio=0.0,
        seed=0,
    )
    data = UnirankDataModule(
        Preferences(str(repo / "data/demo-preferences.jsonl"), validation_fraction=0.2), batch_groups=8, seed=0
    )
    return module, data


def trainer(tmp_path, epochs, callbacks=(), **kwargs):
    return L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        **kwargs,
    )


def test_fit_changes_every_parameter_and_targets_are_the_fit(repo, tmp_path):
    module, data = make(repo, calibration=Calibration(stage1_prior=False))
    before = {n: p.detach().clone() for n, p in module.named_parameters()}
    trainer(tmp_path, 2).fit(module, datamodule=data)
    unchanged = [n for n, p in module.named_parameters() if p.requires_grad and torch.equal(p, before[n])]
    assert unchanged == []
    train = data.datasets["train"].tables
    comparisons = train.comparisons.select("group_id", "item_a", "item_b", "p", "weight")
    expected, _ = fit_targets(comparisons, items=train.items)
    assert anchor_comparisons(train.items).height == 0  # preferences carry no absolute labels
    joined = module.targets.join(expected, on=["group_id", "item_id"], suffix="_expected")
    assert joined.height == expected.height == train.items.height
    np.testing.assert_allclose(joined["target"], joined["target_expected"], atol=1e-12)


def test_sparse_groups_get_the_stage1_prior(repo, tmp_path):
    module, data = make(repo)
    trainer(tmp_path, 2).fit(module, datamodule=data)
    # one chosen/rejected pair per prompt: every group is sparse, so the prior moves the targets
    plain, _ = fit_targets(data.datasets["train"].tables.comparisons, items=data.datasets["train"].tables.items)
    assert not np.allclose(module.targets["target"].to_numpy(), plain["target"].to_numpy())
    assert module.trainer.callback_metrics["fit/prior_groups"] > 0


def test_each_item_is_encoded_once_per_step(repo):
    module, data = make(repo)
    data.attach(module.tokenizer, module.adapter)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    module.scorer.sequences_encoded = 0
    scores = module.scorer.score_batch(batch).items
    assert module.scorer.sequences_encoded == len(batch.item_id) == len(set(zip(batch.group_id, batch.item_id)))
    assert scores.shape == (len(batch.item_id),)
    # every comparison reuses those scores: the same numbers as scoring each side separately
    module.eval()
    alone = module.scorer.score_encoded(data.datasets["train"].encode(batch.item_index.numpy()))
    np.testing.assert_allclose(module.scorer.score_batch(batch).items.detach().numpy(), alone, atol=1e-5)


class Die(L.Callback):
    """Simulates a crash at the first batch of `epoch`."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("killed")


@pytest.mark.parametrize("die_at_epoch", [1, 2])  # at the fit (start of stage 2), and inside stage 2
def test_resume_after_a_crash_ends_with_the_same_weights(repo, tmp_path, die_at_epoch):
    schedule = Schedule(1, 2)
    straight, data = make(repo, schedule=schedule)
    trainer(tmp_path / "a", 3).fit(straight, datamodule=data)

    crashed, data = make(repo, schedule=schedule)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "b", save_last=True, save_top_k=-1)
    with pytest.raises(RuntimeError, match="killed"):
        trainer(tmp_path / "b", 3, [checkpoints, Die(die_at_epoch)]).fit(crashed, datamodule=data)

    resumed, data = make(repo, schedule=schedule)
    trainer(tmp_path / "b", 3, [ModelCheckpoint(dirpath=tmp_path / "c")]).fit(
        resumed, datamodule=data, ckpt_path=str(tmp_path / "b/last.ckpt")
    )
    for (name, a), b in zip(straight.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert resumed.targets.equals(straight.targets)


def test_schedule_must_match_max_epochs(repo, tmp_path):
    module, data = make(repo)
    with pytest.raises(ValueError, match="max_epochs=3 but the schedule has 1 pairwise \\+ 1 pointwise"):
        trainer(tmp_path, 3).fit(module, datamodule=data)


def test_a_checkpoint_trained_with_a_removed_experiment_is_refused_naming_it(repo, tmp_path):
    import json

    from unirank.training.export import load_checkpoint

    module, data = make(repo)
    trainer(tmp_path, 2).fit(module, datamodule=data)
    path = tmp_path / "old.ckpt"
    module.trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)
    config = json.loads(checkpoint["unirank"]["config"])
    config["schedule"]["distill_epochs"] = 0  # a 0.1 checkpoint that did not use it loads
    checkpoint["unirank"]["config"] = json.dumps(config)
    torch.save(checkpoint, path)
    assert load_checkpoint(path).schedule == module.schedule
    config["schedule"]["distill_epochs"] = 2
    checkpoint["unirank"]["config"] = json.dumps(config)
    torch.save(checkpoint, path)
    with pytest.raises(ValueError, match="schedule.distill_epochs=2, removed in 0.2"):
        load_checkpoint(path)


def test_final_calibration_is_fitted_on_validation_and_folded_into_the_head(repo, tmp_path):
    module, data = make(repo, calibration=Calibration(final="platt"))
    trainer(tmp_path, 2).fit(module, datamodule=data)
    fit = module.scorer.final_calibration
    assert fit is not None and fit["fitted_on"].startswith("validation split: ")
    assert fit["after"]["ece"] <= fit["before"]["ece"] + 1e-9  # maximum likelihood on the same comparisons
    validation = data.datasets["validation"]
    scores = module.scorer.score_rows(validation, np.arange(validation.n_items))
    assert np.isfinite(scores).all() and fit["a"] > 0


def test_stage2_keeps_a_ranking_term(repo):
    import polars as pl

    module, data = make(repo, calibration=Calibration(final="none"))
    data.attach(module.tokenizer, module.adapter)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    n = len(batch.item_id)
    module.set_targets(
        pl.DataFrame({"group_id": batch.group_id, "item_id": batch.item_id, "target": [0.5] * n,
                      "std_err": [0.0] * n, "latent": [0.0] * n})
    )  # fmt: skip
    module.eval()
    with torch.no_grad():
        out = module.scorer.score_batch(batch)
        losses = {}
        for weight in (0.0, 1.0):
            module.ranking_weight = weight
            losses[weight] = float(module.stage_loss("pointwise", out, batch))
        expected = float(comparison_loss(out.items, batch))
    assert expected > 0 and losses[1.0] - losses[0.0] == pytest.approx(expected, rel=1e-5)
