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
    with pytest.raises(ValueError, match="max_epochs=3 but the schedule has 0 distill \\+ 1 pairwise \\+ 1 pointwise"):
        trainer(tmp_path, 3).fit(module, datamodule=data)


def test_listwise_distillation_loss_is_zero_when_the_ranking_distribution_matches():
    from unirank.losses import listwise_distillation_loss

    teacher = torch.tensor([0.9, 0.5, 0.1, 0.3, 0.2])
    matching = teacher / 0.05 + torch.tensor([3.0, 3.0, 3.0, -1.0, -1.0])  # a shift per group changes nothing
    assert listwise_distillation_loss(matching, teacher, [3, 2], 0.05).item() == pytest.approx(0.0, abs=1e-5)
    assert listwise_distillation_loss(-matching, teacher, [3, 2], 0.05).item() > 1.0


def test_distill_stage_pulls_the_scores_towards_the_first_stage(repo, tmp_path):
    from scipy.stats import spearmanr

    from unirank.adapters import RetrievalAdapter
    from unirank.domains.retrieval.source import MinedBeir
    from unirank.mining.pipeline import MiningConfig

    module = UnirankModule(model="tiny", adapter=RetrievalAdapter(max_length=96), schedule=Schedule(0, 0, 3),
                           lr=2e-3, head_lr=2e-3, warmup_ratio=0.0)  # fmt: skip
    mining = MiningConfig(k=10, negatives=5, validation_fraction=0.0, cache_dir=str(tmp_path / "cache"))
    data = UnirankDataModule(MinedBeir(str(repo / "data/demo-beir"), mining=mining), batch_groups=4)
    data.attach(module.tokenizer, module.adapter)
    data.setup("fit")
    train = data.datasets["train"]

    def agreement():
        scores = module.scorer.score_rows(train, np.arange(train.n_items))
        return np.mean(
            [spearmanr(scores[g.items], train.teacher[g.items]).statistic for g in map(train.group, range(len(train)))]
        )

    before = agreement()
    trainer(tmp_path, 3).fit(module, datamodule=data)
    assert module.trainer.callback_metrics["train/distill_loss"] >= 0
    assert agreement() > before + 0.2


def test_distill_weight_adds_the_teacher_term_to_the_later_stages(repo, tmp_path):
    from unirank.adapters import RetrievalAdapter
    from unirank.domains.retrieval.source import MinedBeir
    from unirank.losses import anchor_loss, listwise_distillation_loss
    from unirank.mining.pipeline import MiningConfig

    module = UnirankModule(model="tiny", adapter=RetrievalAdapter(max_length=96), distill_temperature=0.1)
    mining = MiningConfig(k=10, negatives=5, validation_fraction=0.0, cache_dir=str(tmp_path / "cache"))
    data = UnirankDataModule(MinedBeir(str(repo / "data/demo-beir"), mining=mining), batch_groups=4)
    data.attach(module.tokenizer, module.adapter)
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    module.eval()
    with torch.no_grad():
        out = module.scorer.score_batch(batch)
        bt = float(comparison_loss(out.items, batch) + anchor_loss(out.items, batch, module.calibration.label_weight))
        kl = float(listwise_distillation_loss(out.items, batch.teacher, batch.group_sizes, 0.1))
        module.distill_weight = 0.5
        with_teacher = float(module.stage_loss("pairwise", out, batch))
        batch.teacher[0] = float("nan")
        with pytest.raises(ValueError, match="needs first_stage_score on every item"):
            module.stage_loss("pairwise", out, batch)
    assert kl > 0 and with_teacher == pytest.approx(bt + 0.5 * kl, rel=1e-5)


def test_teacher_term_without_first_stage_scores_fails_before_the_first_step(repo, tmp_path):
    from unirank.data.tables import TableError

    module, data = make(repo)
    module.distill_weight = 0.5
    with pytest.raises(TableError, match=r"demo-preferences\.jsonl: item .* of group .* has no first_stage_score"):
        trainer(tmp_path, 2).fit(module, datamodule=data)
    assert module.global_step == 0


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


def test_fused_prior_carries_the_first_stage_order_into_the_targets(repo, tmp_path):
    from dataclasses import replace

    from scipy.stats import spearmanr

    from unirank.adapters import RetrievalAdapter
    from unirank.domains.retrieval.source import MinedBeir
    from unirank.mining.pipeline import MiningConfig
    from unirank.training.targets import stage1_prior

    module = UnirankModule(model="tiny", adapter=RetrievalAdapter(max_length=96), seed=0)
    mining = MiningConfig(k=10, negatives=5, candidates="top_k", validation_fraction=0.25,
                          cache_dir=str(tmp_path / "cache"))  # fmt: skip
    data = UnirankDataModule(MinedBeir(str(repo / "data/demo-beir"), mining=mining), batch_groups=4)
    data.attach(module.tokenizer, module.adapter)
    data.setup("fit")
    train, held_out = data.datasets["train"], data.datasets["validation"]
    plain = Calibration(label_weight=30.0, prior_groups="all")

    def agreement(calibration) -> float:
        """Mean Spearman correlation, per query, of the prior means with the first stage's scores."""
        prior = stage1_prior(module.scorer, train, held_out, calibration, anchored=True)
        means = dict(zip(zip(prior["group_id"], prior["item_id"]), prior["prior_mean"]))
        keys = list(zip(train.item_group.to_list(), train.item_id.to_list()))
        rows = [train.group(g).items for g in range(len(train))]
        keyed = [[means[keys[i]] for i in r] for r in rows]
        return float(np.mean([spearmanr(m, train.teacher[r]).statistic for m, r in zip(keyed, rows)]))

    # an untrained model ranks at random; the first stage ranks the demo lists well, so γ is large
    assert agreement(replace(plain, prior_fusion=True)) > 0.9 > agreement(plain)


def test_fused_prior_needs_first_stage_scores(repo, tmp_path):
    module, data = make(repo, calibration=Calibration(prior_fusion=True))
    with pytest.raises(ValueError, match="prior_fusion needs a first_stage_score on every training item"):
        trainer(tmp_path, 2).fit(module, datamodule=data)
