"""The one LightningModule: Bradley-Terry pairwise training, a Thurstone fit, pointwise training,
then the final calibration.

Pairwise epochs train w·BCEWithLogits(r_a − r_b, p) on the comparisons, and an item whose label is its only evidence
(a process step, a pointwise-labelled item) against the anchor at r ≡ 0.
At the first pointwise epoch the training split is fitted once (`unirank.training.pointwise_targets`); the
remaining epochs train w·BCE(σ(r), Φ(latent)) + λ·BT, w = 1/(1 + se²). When training ends, σ(a·r + b)
is fitted on the validation split and folded into the head, and the head posterior is fitted;
callbacks the module declares hand those fits their data (`unirank.training.callbacks`). Every
domain trains the same way: a batch's items are the scored units (`unirank.adapters.base.Batch`).
The module trains a `Scorer`, which does all inference. Checkpoints carry the stage and the
targets, so a resumed run continues in the right stage with the same targets. Math: docs/math.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Literal

import lightning as L
import polars as pl
import torch

from unirank.adapters import Adapter, RetrievalAdapter
from unirank.adapters.base import Batch
from unirank.losses import anchor_loss, comparison_loss, pointwise_loss, target_weight
from unirank.model.backbone import load_backbone
from unirank.model.lora import LoRA, add_adapters
from unirank.model.packing import Packing
from unirank.model.scorer import BatchScores, Scorer
from unirank.training.callbacks import AttachEncoder, FinalFits, PointwiseTargets, TrainingProgress
from unirank.training.interrupt import CheckpointOnSigterm
from unirank.training.optimisation import adamw_with_warmup
from unirank.training.settings import Calibration, Schedule, pairwise_reading
from unirank.training.sharding import check_strategy, has_sharded_weights, is_sharded, shard_model
from unirank.training.uncertainty import restore_uncertainty, uncertainty_state
from unirank.training.validation import ValidationMetrics

__all__ = ["Calibration", "LoRA", "Packing", "Schedule", "UnirankModule"]


class UnirankModule(L.LightningModule):
    """A scorer trained by the two-stage schedule.

    Args:
        model: Hugging Face name or local path of the backbone, `minilm` (packaged all-MiniLM-L6-v2)
            or `tiny` (a small random BERT built in-process, for tests).
        adapter: the domain adapter (formatting, truncation, tokenisation).
        schedule: epochs of each stage; calibration: settings of the fits between and after them.
        lr: learning rate of the backbone; head_lr: of the new scalar head.
        weight_decay: AdamW weight decay; warmup_ratio: share of steps with linear warm-up (then linear decay).
        chunk_size: sequences per forward pass when scoring outside training batches.
        ranking_weight: λ of the ranking term kept in the pointwise stage: loss = pointwise + λ·BT on
            the same batch's comparisons, so calibrating cannot unlearn the order (0: pointwise alone).
        dropout: every dropout layer's probability while training (None: the backbone's own, 0.1 for
            BERT; 0: none, TRL's default, which also lets attention run in its fused kernel).
        seed: seeds the head's initialisation and the dropout of each batch.
        trust_remote_code: allow a backbone's own code to run (off unless asked).
        packing: a decoder's batches without padding, and its prompts shared (`unirank.model.packing`).
        lora: train LoRA adapters on the frozen backbone and the head in full (`unirank.model.lora`); the
            export merges them. None: every weight trains.
        gradient_checkpointing: keep only each layer's input in the forward pass and recompute the
            rest in the backward pass (the same gradients, much less activation memory, ~30 % more time).
        head: "scalar" (a linear head on the last state) or "yes-no" (a decoder's LM read as
            logit("yes") − logit("no") at the last token, exported as a causal LM: `unirank.model.yes_no`).
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
        ranking_weight: float = 1.0,
        dropout: float | None = None,
        seed: int = 0,
        trust_remote_code: bool = False,
        packing: Packing = Packing(),
        lora: LoRA | None = None,
        gradient_checkpointing: bool = False,
        head: Literal["scalar", "yes-no"] = "scalar",
    ):
        super().__init__()
        self.model_name = model
        self.adapter = adapter or RetrievalAdapter()
        self.schedule, self.calibration = schedule, calibration
        self.lr, self.head_lr, self.weight_decay, self.warmup_ratio = lr, head_lr, weight_decay, warmup_ratio
        self.chunk_size, self.seed = chunk_size, seed
        self.ranking_weight, self.dropout, self.trust_remote_code = ranking_weight, dropout, trust_remote_code
        self.packing, self.lora, self.gradient_checkpointing, self.head = packing, lora, gradient_checkpointing, head
        self.quantize = "none" if lora is None else lora.quantize
        if lora is not None and lora.save_adapter and head == "yes-no":
            raise ValueError(
                "lora.save_adapter writes a scalar-head adapter; the yes/no export is the causal LM itself"
            )
        backbone, self.tokenizer = load_backbone(
            model, trust_remote_code=trust_remote_code, seed=seed, head=head, quantize=self.quantize
        )
        if gradient_checkpointing:
            enable_checkpointing(backbone)
        with torch.random.fork_rng():
            torch.manual_seed(seed)  # the adapters' initialisation
            self.lora_targets = add_adapters(backbone, lora) if lora is not None else []
        self.strict_loading = lora is None  # a LoRA checkpoint holds the trained weights only
        self.scorer = Scorer(backbone, self.tokenizer, self.adapter, chunk_size, packing)
        self.scorer.pairwise_reading = self.pairwise_reading
        if dropout is not None:
            self.scorer.set_dropout(dropout)
        self.scorer.train()  # from_pretrained returns eval mode; training uses the backbone's dropout
        self.targets: pl.DataFrame | None = None
        self._target_lookup: dict[tuple[str, str], tuple[float, float]] = {}
        self._validation = ValidationMetrics()
        self.trained_precision: str | None = None
        """The precision the weights were trained in, once known (read back from a checkpoint)."""
        self.group_sources: dict[str, str] | None = None
        """{group id: source} of a `Mixture`'s data (set by AttachEncoder): validation per source."""

    # ---- configuration carried by checkpoints and exports -------------------------------------
    def config(self) -> dict:
        """Plain data that rebuilds this module (no pickled objects, so checkpoints load weights-only)."""
        plain = (
            "chunk_size",
            "ranking_weight",
            "dropout",
            "seed",
            "trust_remote_code",
            "gradient_checkpointing",
            "head",
        )
        adapter = {
            "class": type(self.adapter).__name__,
            "domain": self.adapter.domain,
            "init_args": self.adapter.init_args,
        }
        settings = {"schedule": asdict(self.schedule), "calibration": asdict(self.calibration)}
        settings |= {"packing": asdict(self.packing), "lora": None if self.lora is None else asdict(self.lora)}
        return {"model": self.model_name, "adapter": adapter, **settings, **{k: getattr(self, k) for k in plain}}

    @property
    def pairwise_reading(self) -> str:
        return pairwise_reading(self.schedule, self.calibration)

    @property
    def stage(self) -> str:
        return self.schedule.stage_at(self.current_epoch)

    def setup(self, stage: str) -> None:
        check_strategy(self.trainer)
        if self.quantize != "none" and is_sharded(self.trainer):
            raise ValueError("lora.quantize=4bit (QLoRA) is not sharded: run it one model per process (DDP)")

    def configure_model(self) -> None:
        """Under ModelParallelStrategy: shard the decoder layer by layer over the data-parallel
        processes (`unirank.training.sharding`); otherwise nothing."""
        if not is_sharded(self._trainer) or has_sharded_weights(self.scorer.model):
            return
        if not self.scorer.reads_last_token:
            raise ValueError("sharded training is for decoders (an encoder's read-out runs its last layer by parts)")
        shard_model(self.scorer.model, self.device_mesh["data_parallel"])

    def unsharded_model(self, state: dict):
        """A plain copy of the scorer's model holding `state` (the gathered weights): the backbone
        loaded again as at the start, adapters added, every weight replaced."""
        model, _ = load_backbone(self.model_name, trust_remote_code=self.trust_remote_code, head=self.head)
        if self.lora is not None:
            add_adapters(model, self.lora)
        model.load_state_dict(state)
        return model

    def on_fit_start(self) -> None:
        if not self.trainer.fast_dev_run:  # fast_dev_run: one batch, every stage's loss on it
            self.schedule.check_epochs(self.trainer.max_epochs)
        if self.packing.padding_free and self.trainer.is_global_zero:
            print(f"packed rows attend through {self.scorer.packed_attention()} on {self.device}", flush=True)

    # ---- training -----------------------------------------------------------------------------
    def stages_now(self) -> list[str]:
        """The stage of this epoch; under fast_dev_run every stage of the schedule, on its one batch."""
        return self.schedule.stages if self.trainer.fast_dev_run else [self.stage]

    def configure_callbacks(self) -> list[L.Callback]:
        """The tokenizer handed to the data module; the Thurstone targets at the first pointwise
        epoch; the final calibration and the head posterior when training ends; progress lines
        where output goes to a log (unirank.training.callbacks); a resumable checkpoint on SIGTERM
        (unirank.training.interrupt)."""
        return [AttachEncoder(), PointwiseTargets(), FinalFits(), TrainingProgress(), CheckpointOnSigterm()]

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
        """The loss of one batch in a stage: pairwise (Bradley-Terry on the comparisons + each
        label that is its item's only evidence against the anchor) or pointwise (BCE against the
        targets + λ·Bradley-Terry on the same comparisons)."""
        scores = out.items
        if stage == "pairwise":
            return comparison_loss(scores, batch) + anchor_loss(scores, batch, self.calibration.label_weight)
        pairs = [self._target_lookup[(g, i)] for g, i in zip(batch.group_id, batch.item_id)]
        target, std_err = torch.tensor(pairs, dtype=torch.float32, device=self.device).unbind(1)
        loss = pointwise_loss(scores, target, target_weight(std_err))
        return loss + self.ranking_weight * comparison_loss(scores, batch) if self.ranking_weight else loss

    # ---- the targets of stage 2 (fitted by unirank.training.callbacks.PointwiseTargets) ------------
    def set_targets(self, targets: pl.DataFrame) -> None:
        self.targets = targets
        self._target_lookup = {
            (g, i): (t, s) for g, i, t, s in targets.select("group_id", "item_id", "target", "std_err").iter_rows()
        }

    # ---- validation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._validation = ValidationMetrics(self.group_sources)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        scores = self.scorer.score_batch(batch).items
        for name, (value, size) in self._validation.update(scores, batch).items():
            self.log(name, value, prog_bar=name == "val/pairwise_accuracy", batch_size=size, sync_dist=True)
        if len(batch.comp_a):
            self.log("val/bt_loss", comparison_loss(scores, batch), batch_size=len(batch.item_id), sync_dist=True)

    def on_validation_epoch_end(self) -> None:
        for name, value in self._validation.compute().items():
            self.log(name, value, sync_dist=True)

    def configure_optimizers(self):
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return adamw_with_warmup(self.scorer, self.lr, self.head_lr, self.weight_decay, self.warmup_ratio, total)

    # ---- checkpoints --------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.lora is not None:  # the frozen backbone is reloaded from the base model on resume
            trained = {"scorer." + name for name, p in self.scorer.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trained}
        checkpoint["unirank"] = {
            "config": json.dumps(self.config()),
            "precision": str(self.trainer.precision) if self._trainer is not None else self.trained_precision,
            "stage": self.stage,
            "attention": self.scorer.model.config._attn_implementation,
            "final_calibration": self.scorer.final_calibration,
            **uncertainty_state(self.scorer),
            "targets": None if self.targets is None else self.targets.to_dict(as_series=False),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("unirank", {})
        self.scorer.final_calibration = state.get("final_calibration")
        self.trained_precision = state.get("precision")
        restore_uncertainty(self.scorer, state)
        if state.get("targets") is not None:
            self.set_targets(pl.DataFrame(state["targets"]))


def enable_checkpointing(backbone) -> None:
    """transformers' activation checkpointing of every layer, non-reentrant (works with frozen
    inputs, as under LoRA); the key-value cache is off, as it must be."""
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers ≥ 5.2x
        backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    backbone.config.use_cache = False
