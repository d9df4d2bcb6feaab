"""The one LightningModule: Bradley-Terry pairwise training, a Thurstone fit, pointwise training,
then the final calibration.

Optional distill epochs first match each group's scores to the first stage's (listwise KL: a
warm start, so training begins at the first stage's ranking, not at random). Then pairwise epochs
train on the comparisons with w·BCEWithLogits(r_a − r_b, p). At the first pointwise epoch the
comparisons of the training split (plus absolute labels as comparisons against the anchor) are
fitted once (`unirank.training.targets`), with the stage-1 model's scores, mapped onto the
latent scale on the validation split, as prior means (for sparse groups, or for every group). The
remaining epochs train w·BCE(σ(r), Φ(latent)) + λ·BT, w = 1/(1 + se²). When training ends, σ(a·r + b)
is fitted on the validation split and folded into the head (`unirank.training.final_calibration`),
and the head posterior is fitted (`unirank.uncertainty`); callbacks the module declares hand those
fits their data (`unirank.training.callbacks`). The module trains a `Scorer`, which does all
inference. Checkpoints carry the stage and the targets, so a resumed run continues in the right
stage with the same targets. Math: docs/math.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

import lightning as L
import polars as pl
import torch

from unirank.adapters import Adapter, RetrievalAdapter
from unirank.adapters.base import Batch
from unirank.fitting import (
    step_item_id,
)
from unirank.fitting.laplace import HeadPosterior
from unirank.losses import bradley_terry_loss, listwise_distillation_loss, pointwise_loss, target_weight
from unirank.scorer import BatchScores, Scorer, load_backbone
from unirank.training.callbacks import AttachEncoder, FinalFits, PointwiseTargets, TrainingProgress
from unirank.uncertainty import posterior_from_state, posterior_state


@dataclass(frozen=True)
class Schedule:
    """Epochs of each stage, in order: distill (optional warm start from the first stage's scores),
    pairwise, pointwise; a run lasts their sum."""

    pairwise_epochs: int = 1
    pointwise_epochs: int = 1
    distill_epochs: int = 0

    def __post_init__(self) -> None:
        counts = {"distill": self.distill_epochs, "pairwise": self.pairwise_epochs, "pointwise": self.pointwise_epochs}
        negative = [f"{name}_epochs={count}" for name, count in counts.items() if count < 0]
        if negative:
            raise ValueError(f"schedule: {', '.join(negative)}: epochs cannot be negative")
        if self.total_epochs == 0:
            raise ValueError("schedule: every stage has 0 epochs, so nothing would be trained")

    @property
    def total_epochs(self) -> int:
        return self.distill_epochs + self.pairwise_epochs + self.pointwise_epochs

    @property
    def stages(self) -> list[str]:
        """The stages that have epochs, in order."""
        counts = (
            ("distill", self.distill_epochs),
            ("pairwise", self.pairwise_epochs),
            ("pointwise", self.pointwise_epochs),
        )
        return [name for name, count in counts if count]


@dataclass(frozen=True)
class Calibration:
    """The Thurstone fit between the stages, and the final calibration after training.

    link: thurstone (Φ) or bradley-terry (σ); l2: prior precision; label_weight: weight of an
    absolute label's comparison against the anchor (× an item's own `label_weight` column);
    stage1_prior: stage-1 scores, mapped onto the latent scale on the validation split, are the
    prior means; prior_groups: for groups of at most `sparse_group_size` items ("sparse": a chat
    prompt with one pair) or for every group ("all": targets follow the stage-1 order where labels
    and comparisons are silent); final: "platt" fits σ(a·r + b) on the validation split after
    training and folds it into the head (see unirank.fitting.platt), "none" leaves the logits as trained;
    uncertainty: "laplace" then fits the head's posterior on up to `uncertainty_items` training items
    (see unirank.uncertainty), so scores come with a standard error.
    """

    link: Literal["thurstone", "bradley-terry"] = "thurstone"
    l2: float = 1.0
    label_weight: float = 1.0
    stage1_prior: bool = True
    sparse_group_size: int = 2
    prior_groups: Literal["sparse", "all"] = "sparse"
    final: Literal["none", "platt"] = "platt"
    uncertainty: Literal["none", "laplace"] = "laplace"
    uncertainty_items: int = 2048


class UnirankModule(L.LightningModule):
    """A scorer trained by the two-stage schedule.

    Args:
        model: Hugging Face name or local path of the backbone, `minilm` (packaged all-MiniLM-L6-v2)
            or `tiny` (a small random BERT built in-process, for tests).
        adapter: the domain adapter (formatting, truncation, tokenisation).
        schedule: epochs of each stage.
        calibration: settings of the Thurstone fit.
        lr: learning rate of the backbone; head_lr: of the new scalar head.
        weight_decay: AdamW weight decay; warmup_ratio: share of steps with linear warm-up (then linear decay).
        chunk_size: sequences per forward pass when scoring outside training batches.
        distill_temperature: τ of the warm start's teacher distribution softmax(first-stage score / τ).
        ranking_weight: λ of the ranking term kept in the pointwise stage: loss = pointwise + λ·BT on
            the same batch's comparisons, so calibrating cannot unlearn the order (0: pointwise alone).
        dropout: the probability of every dropout layer while training (None: the backbone's own, 0.1 for
            BERT; 0: none, as TRL's RewardTrainer does by default, which also lets attention run in
            the fused kernel instead of materialising the attention matrix).
        seed: seeds the head's initialisation and the dropout of each batch.
        trust_remote_code: allow a backbone's own code to run (off unless asked).
    """

    def __init__(
        self,
        model: str = "minilm",
        adapter: Adapter | None = None,
        schedule: Schedule = Schedule(),
        calibration: Calibration = Calibration(),
        lr: float = 2e-5,
        head_lr: float = 1e-3,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        chunk_size: int = 32,
        distill_temperature: float = 0.05,
        ranking_weight: float = 1.0,
        dropout: float | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
    ):
        super().__init__()
        self.model_name = model
        self.adapter = adapter or RetrievalAdapter()
        self.schedule, self.calibration = schedule, calibration
        self.lr, self.head_lr, self.weight_decay, self.warmup_ratio = lr, head_lr, weight_decay, warmup_ratio
        self.chunk_size, self.seed, self.distill_temperature = chunk_size, seed, distill_temperature
        self.ranking_weight, self.dropout = ranking_weight, dropout
        backbone, self.tokenizer = load_backbone(model, trust_remote_code=trust_remote_code, seed=seed)
        self.scorer = Scorer(backbone, self.tokenizer, self.adapter, chunk_size)
        self.scorer.pairwise_reading = self.pairwise_reading
        if dropout is not None:
            self.scorer.set_dropout(dropout)
        self.scorer.train()  # from_pretrained returns eval mode; training uses the backbone's dropout
        self.targets: pl.DataFrame | None = None
        self._target_lookup: dict[tuple[str, str], tuple[float, float]] = {}
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

    @property
    def final_calibration(self) -> dict | None:
        """The final calibration's fit and its validation figures (kept by the scorer)."""
        return self.scorer.final_calibration

    @final_calibration.setter
    def final_calibration(self, value: dict | None) -> None:
        self.scorer.final_calibration = value

    @property
    def head_posterior(self) -> HeadPosterior | None:
        return self.scorer.head_posterior

    @head_posterior.setter
    def head_posterior(self, value: HeadPosterior | None) -> None:
        self.scorer.head_posterior = value

    # ---- configuration carried by checkpoints and exports -------------------------------------
    def config(self) -> dict:
        """Plain data that rebuilds this module (no pickled objects, so checkpoints load weights-only)."""
        return {
            "model": self.model_name,
            "adapter": {"class": type(self.adapter).__name__, "init_args": self.adapter.init_args},
            "schedule": asdict(self.schedule),
            "calibration": asdict(self.calibration),
            "chunk_size": self.chunk_size,
            "distill_temperature": self.distill_temperature,
            "ranking_weight": self.ranking_weight,
            "dropout": self.dropout,
            "seed": self.seed,
        }

    @property
    def pairwise_reading(self) -> str:
        """How two logits read as P(a ≻ b): thurstone once trained on Thurstone targets, else bradley-terry."""
        pointwise = self.schedule.pointwise_epochs > 0 and self.calibration.link == "thurstone"
        return "thurstone" if pointwise else "bradley-terry"

    @property
    def stage(self) -> str:
        if self.current_epoch < self.schedule.distill_epochs:
            return "distill"
        if self.current_epoch < self.schedule.distill_epochs + self.schedule.pairwise_epochs:
            return "pairwise"
        return "pointwise"

    def on_fit_start(self) -> None:
        if self.trainer.fast_dev_run:  # one batch: every stage's loss on it (see training_step)
            return
        if self.trainer.max_epochs != self.schedule.total_epochs:
            raise ValueError(
                f"trainer.max_epochs={self.trainer.max_epochs} but the schedule has "
                f"{self.schedule.distill_epochs} distill + {self.schedule.pairwise_epochs} pairwise + "
                f"{self.schedule.pointwise_epochs} pointwise epochs"
            )

    # ---- training -----------------------------------------------------------------------------
    def stages_now(self) -> list[str]:
        """The stage of this epoch; under fast_dev_run every stage of the schedule, on its one batch."""
        return self.schedule.stages if self.trainer.fast_dev_run else [self.stage]

    def configure_callbacks(self) -> list[L.Callback]:
        """The tokenizer handed to the data module; the Thurstone targets at the first pointwise
        epoch; the final calibration and the head posterior when training ends; progress lines
        where output goes to a log (unirank.training.callbacks)."""
        return [AttachEncoder(), PointwiseTargets(), FinalFits(), TrainingProgress()]

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        # dropout masks depend on (seed, epoch, batch) alone, so a resumed run draws the same ones
        torch.manual_seed((self.seed * 1_000_003 + self.current_epoch) * 1_000_003 + batch_idx)
        out = self.scorer.score_batch(batch)
        total = out.items.sum() * 0.0
        for stage in self.stages_now():
            loss = self.stage_loss(stage, out, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite {stage} loss ({loss.item()}) at epoch {self.current_epoch}, batch {batch_idx} "
                    f"(groups {sorted(set(batch.group_id))[:5]}...)"
                )
            self.log(f"train/{stage}_loss", loss, prog_bar=True, batch_size=len(batch.item_id))
            total = total + loss
        return total

    def stage_loss(self, stage: str, out: BatchScores, batch: Batch) -> torch.Tensor:
        """The loss of one batch in a stage: distill (listwise KL to the first stage), pairwise
        (Bradley-Terry; process: + each step against the anchor) or pointwise (BCE against the
        targets + λ·Bradley-Terry on the same comparisons; process: + each step's target)."""
        if stage == "distill":
            return self._distill_loss(out.items, batch)
        if stage == "pairwise":
            loss = self._pairwise_loss(out.items, batch)
            return loss + self._step_anchor_loss(out, batch) if out.steps is not None else loss
        target, std_err = self._lookup_targets(batch)
        loss = pointwise_loss(out.items, target, target_weight(std_err))
        if self.ranking_weight:
            loss = loss + self.ranking_weight * self._pairwise_loss(out.items, batch)
        return loss + self._step_pointwise_loss(out, batch) if out.steps is not None else loss

    def _pairwise_loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        if len(batch.comp_a) == 0:
            return scores.sum() * 0.0
        dev = self.device
        return bradley_terry_loss(
            scores, batch.comp_a.to(dev), batch.comp_b.to(dev), batch.p.to(dev), batch.weight.to(dev)
        )

    def _distill_loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Warm start: match each group's score distribution to the first stage's (listwise KL)."""
        teacher = batch.teacher.to(self.device)
        if torch.isnan(teacher).any():
            raise ValueError("distill_epochs > 0 needs first_stage_score on every item (mined candidates have it)")
        return listwise_distillation_loss(scores, teacher, batch.group_sizes, self.distill_temperature)

    def _step_labels(self, out: BatchScores, batch: Batch) -> torch.Tensor:
        """The label of every scored step (NaN where unlabeled)."""
        labels = batch.step_labels or [None] * len(batch.item_id)
        values = [
            (labels[o] or [])[k] if k < len(labels[o] or []) and labels[o][k] is not None else float("nan")
            for o, k in zip(out.step_owner.tolist(), out.step_index.tolist())
        ]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def _step_anchor_loss(self, out: BatchScores, batch: Batch) -> torch.Tensor:
        """Stage 1 for steps: each labelled step against the anchor at r = 0, BCEWithLogits(r_i − 0, label)."""
        labels = self._step_labels(out, batch)
        known = ~torch.isnan(labels)
        if not known.any():
            return out.steps.sum() * 0.0
        weight = torch.full_like(labels[known], self.calibration.label_weight)
        zeros = torch.zeros_like(out.steps[known])
        scores = torch.stack([out.steps[known], zeros], dim=1).flatten()
        index = torch.arange(int(known.sum()), device=self.device) * 2
        return bradley_terry_loss(scores, index, index + 1, labels[known], weight)

    def _step_pointwise_loss(self, out: BatchScores, batch: Batch) -> torch.Tensor:
        """Stage 2 for steps: BCE(σ(r_i), Φ(latent of step i)) over the steps that have a target."""
        keys = [
            (batch.group_id[o], step_item_id(batch.item_id[o], k))
            for o, k in zip(out.step_owner.tolist(), out.step_index.tolist())
        ]
        known = [i for i, key in enumerate(keys) if key in self._target_lookup]
        if not known:
            return out.steps.sum() * 0.0
        values = torch.tensor([self._target_lookup[keys[i]] for i in known], dtype=torch.float32, device=self.device)
        index = torch.tensor(known, device=self.device)
        return pointwise_loss(out.steps[index], values[:, 0], target_weight(values[:, 1]))

    def _lookup_targets(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self._target_lookup[(g, i)] for g, i in zip(batch.group_id, batch.item_id)]
        values = torch.tensor(pairs, dtype=torch.float32, device=self.device)
        return values[:, 0], values[:, 1]

    # ---- the targets of stage 2 (fitted by unirank.training.callbacks.PointwiseTargets) ------------
    def set_targets(self, targets: pl.DataFrame) -> None:
        self.targets = targets
        self._target_lookup = {
            (g, i): (t, s) for g, i, t, s in targets.select("group_id", "item_id", "target", "std_err").iter_rows()
        }

    # ---- validation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_probs, self._val_labels = [], []

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        scores = self.scorer.score_batch(batch).items
        size = len(batch.item_id)
        if len(batch.comp_a):
            margin = scores[batch.comp_a] - scores[batch.comp_b]
            decided = batch.p != 0.5
            if decided.any():
                correct = (torch.sign(margin[decided]) == torch.sign(batch.p[decided] - 0.5)).float().mean()
                self.log("val/pairwise_accuracy", correct, prog_bar=True, batch_size=int(decided.sum()), sync_dist=True)
            self.log("val/bt_loss", self._pairwise_loss(scores, batch), batch_size=size, sync_dist=True)
        labelled = ~torch.isnan(batch.label)
        if labelled.any():
            self._val_probs.append(torch.sigmoid(scores[labelled]).detach().cpu())
            self._val_labels.append(batch.label[labelled].detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_probs:
            return
        from torchmetrics.functional.classification import binary_calibration_error

        probs, labels = torch.cat(self._val_probs), torch.cat(self._val_labels)
        self.log("val/brier", torch.mean((probs - labels) ** 2), sync_dist=True)
        if torch.all((labels == 0) | (labels == 1)):
            self.log("val/ece", binary_calibration_error(probs, labels.long(), n_bins=15), sync_dist=True)

    # ---- optimisation -------------------------------------------------------------------------
    def configure_optimizers(self):
        groups = [
            {"params": self.scorer.backbone_parameters(), "lr": self.lr},
            {"params": self.scorer.head_parameters(), "lr": self.head_lr},
        ]
        optimizer = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(self.warmup_ratio * total)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ---- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["unirank"] = {
            "config": json.dumps(self.config()),
            "stage": self.stage,
            "final_calibration": self.final_calibration,
            "head_posterior": None if self.head_posterior is None else posterior_state(self.head_posterior),
            "targets": None if self.targets is None else self.targets.to_dict(as_series=False),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("unirank", {})
        self.final_calibration = state.get("final_calibration")
        self.head_posterior = posterior_from_state(state.get("head_posterior"))
        if state.get("targets") is not None:
            self.set_targets(pl.DataFrame(state["targets"]))
