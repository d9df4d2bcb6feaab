"""The one LightningModule: Bradley-Terry pairwise training, a Thurstone fit, pointwise training,
then the final calibration.

Optional distill epochs first match each group's scores to the first stage's (listwise KL: a
warm start, so training begins at the first stage's ranking, not at random). Then pairwise epochs
train on the comparisons with w·BCEWithLogits(r_a − r_b, p). At the first pointwise epoch the
comparisons of the training split (plus absolute labels as comparisons against the anchor) are
fitted once by `unirank.fitting.fit_targets`, with the stage-1 model's scores, mapped onto the
latent scale on the validation split, as prior means (for sparse groups, or for every group). The
remaining epochs train w·BCE(σ(r), Φ(latent)) + λ·BT, w = 1/(1 + se²). When training ends, σ(a·r + b)
is fitted on the validation split and folded into the head (`unirank.fitting.platt`). Checkpoints
carry the stage and the targets, so a resumed run continues in the right stage with the same
targets. Math: docs/math.md.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

import lightning as L
import numpy as np
import polars as pl
import torch

from unirank.adapters import Adapter, RetrievalAdapter
from unirank.adapters.base import Encoded, pad_chunks
from unirank.adapters.process import aggregate_steps
from unirank.fitting import (
    anchor_comparisons,
    fit_score_map,
    fit_score_scale,
    fit_targets,
    step_anchor_comparisons,
    step_item_id,
)
from unirank.fitting.laplace import HeadPosterior
from unirank.losses import bradley_terry_loss, listwise_distillation_loss, pointwise_loss, target_weight
from unirank.precision import warn_if_emulated_bf16
from unirank.scorer import Scorer, load_backbone
from unirank.uncertainty import fit_head_posterior, posterior_from_state, posterior_state


@dataclass(frozen=True)
class BatchScores:
    """items: one logit per batch item; steps (process domain): one logit per kept step, with the
    batch position of its solution (step_owner) and its 0-based step number (step_index)."""

    items: torch.Tensor
    steps: torch.Tensor | None = None
    step_owner: torch.Tensor | None = None
    step_index: torch.Tensor | None = None


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
        self.final_calibration: dict | None = None
        self.head_posterior: HeadPosterior | None = None
        backbone, self.tokenizer = load_backbone(model, trust_remote_code=trust_remote_code, seed=seed)
        self.scorer = Scorer(backbone)
        if dropout is not None:
            self.scorer.set_dropout(dropout)
        self.scorer.train()  # from_pretrained returns eval mode; training uses the backbone's dropout
        self.targets: pl.DataFrame | None = None
        self._target_lookup: dict[tuple[str, str], tuple[float, float]] = {}
        self.sequences_encoded = 0
        self._val_probs: list[torch.Tensor] = []
        self._val_labels: list[torch.Tensor] = []

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

    # ---- scoring ------------------------------------------------------------------------------
    def forward_batch(self, batch: dict) -> BatchScores:
        """Scores of every item of the batch (float32, batch order), each item encoded exactly once.
        Process inputs also give every kept step's score; the item score is their aggregate."""
        item_outputs, step_outputs, step_rows = [], [], []
        offset = 0
        for chunk in batch["chunks"]:
            chunk = {k: v.to(self.device) for k, v in chunk.items()}
            size = chunk["input_ids"].shape[0]
            self.sequences_encoded += size
            if "step_rows" in chunk:
                rows, cols = chunk.pop("step_rows"), chunk.pop("step_cols")
                step_outputs.append(self.scorer.score_positions(rows, cols, **chunk).float())
                step_rows.append(rows + offset)
            else:
                item_outputs.append(self.scorer(**chunk).float())
            offset += size
        order = batch["order"].to(self.device)
        if not step_outputs:
            sorted_scores = torch.cat(item_outputs)
            scores = torch.empty_like(sorted_scores)
            scores[order] = sorted_scores
            return BatchScores(items=scores)
        steps = torch.cat(step_outputs)
        owner = order[torch.cat(step_rows)]  # sorted row → batch position of the step's solution
        step_index = torch.zeros_like(owner)
        for position in torch.unique(owner):  # steps of one solution come in order within its row
            members = owner == position
            step_index[members] = torch.arange(int(members.sum()), device=owner.device)
        items = aggregate_steps(steps, owner, len(order), self.adapter.aggregation)
        return BatchScores(items=items, steps=steps, step_owner=owner, step_index=step_index)

    def score_batch(self, batch: dict) -> torch.Tensor:
        """One score per item of the batch (float32), each item encoded exactly once."""
        return self.forward_batch(batch).items

    @torch.no_grad()
    def _forward_encoded(
        self, encoded: list[Encoded], bf16: bool = False, features: bool = False
    ) -> tuple[BatchScores, torch.Tensor | None]:
        """forward_batch over already-encoded inputs, in eval mode (the training mode is restored);
        bf16: under bfloat16 autocast (about 2x faster on CPU, logits within ~1e-2); features: also
        the final layer's input of every item, in input order (items, not steps)."""
        if bf16:
            warn_if_emulated_bf16(self.device.type, "fp32 (--precision fp32, bf16=False)")
        was_training = self.training
        self.eval()
        try:
            chunks, order = pad_chunks(encoded, self.tokenizer.pad_token_id, self.chunk_size)
            # nullcontext, not autocast(enabled=False): a caller's own autocast stays in force
            precision = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            capture = self.scorer.capturing_head_inputs() if features else contextlib.nullcontext()
            with precision, capture as captured:
                out = self.forward_batch({"chunks": chunks, "order": order})
            if not features:
                return out, None
            in_order = torch.empty_like(sorted_features := torch.cat(captured))
            in_order[order.to(in_order.device)] = sorted_features
            return out, in_order
        finally:
            self.train(was_training)

    def score_encoded(self, encoded: list[Encoded], bf16: bool = False) -> np.ndarray:
        """Scores of already-encoded inputs, in eval mode, chunk by chunk."""
        if not encoded:
            return np.zeros(0)
        return self._forward_encoded(encoded, bf16)[0].items.cpu().numpy().astype(np.float64)

    def score_encoded_with_features(self, encoded: list[Encoded], bf16: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(scores, the final layer's input of each item): what the head posterior needs."""
        out, features = self._forward_encoded(encoded, bf16, features=True)
        return out.items.cpu().numpy().astype(np.float64), features.cpu().numpy().astype(np.float64)

    def score_encoded_steps(self, encoded: list[Encoded], bf16: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
        """Process inputs: (solution scores, one array of step logits per solution), eval mode."""
        out, _ = self._forward_encoded(encoded, bf16)
        owner, steps = out.step_owner.cpu().numpy(), out.steps.cpu().numpy().astype(np.float64)
        return out.items.cpu().numpy().astype(np.float64), [steps[owner == i] for i in range(len(encoded))]

    def score_texts(self, contexts: list[str], candidates: list[str], bf16: bool = False) -> np.ndarray:
        """r for each (context, candidate), formatted by the adapter."""
        return self.score_encoded(self.adapter.encode(self.tokenizer, contexts, candidates), bf16)

    # ---- training -----------------------------------------------------------------------------
    def _stages_now(self) -> list[str]:
        """The stage of this epoch; under fast_dev_run every stage of the schedule, on its one batch."""
        return self.schedule.stages if self.trainer.fast_dev_run else [self.stage]

    def on_train_epoch_start(self) -> None:
        if "pointwise" in self._stages_now() and self.targets is None:
            self.fit_targets()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # dropout masks depend on (seed, epoch, batch) alone, so a resumed run draws the same ones
        torch.manual_seed((self.seed * 1_000_003 + self.current_epoch) * 1_000_003 + batch_idx)
        out = self.forward_batch(batch)
        total = out.items.sum() * 0.0
        for stage in self._stages_now():
            loss = self.stage_loss(stage, out, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"non-finite {stage} loss ({loss.item()}) at epoch {self.current_epoch}, batch {batch_idx} "
                    f"(groups {sorted(set(batch['group_id']))[:5]}...)"
                )
            self.log(f"train/{stage}_loss", loss, prog_bar=True, batch_size=len(batch["item_id"]))
            total = total + loss
        return total

    def stage_loss(self, stage: str, out: BatchScores, batch: dict) -> torch.Tensor:
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

    def _pairwise_loss(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        if len(batch["comp_a"]) == 0:
            return scores.sum() * 0.0
        dev = self.device
        return bradley_terry_loss(
            scores, batch["comp_a"].to(dev), batch["comp_b"].to(dev), batch["p"].to(dev), batch["weight"].to(dev)
        )

    def _distill_loss(self, scores: torch.Tensor, batch: dict) -> torch.Tensor:
        """Warm start: match each group's score distribution to the first stage's (listwise KL)."""
        teacher = batch["teacher"].to(self.device)
        if torch.isnan(teacher).any():
            raise ValueError("distill_epochs > 0 needs first_stage_score on every item (mined candidates have it)")
        return listwise_distillation_loss(scores, teacher, batch["group_sizes"], self.distill_temperature)

    def _step_labels(self, out: BatchScores, batch: dict) -> torch.Tensor:
        """The label of every scored step (NaN where unlabeled)."""
        labels = batch.get("step_labels") or [None] * len(batch["item_id"])
        values = [
            (labels[o] or [])[k] if k < len(labels[o] or []) and labels[o][k] is not None else float("nan")
            for o, k in zip(out.step_owner.tolist(), out.step_index.tolist())
        ]
        return torch.tensor(values, dtype=torch.float32, device=self.device)

    def _step_anchor_loss(self, out: BatchScores, batch: dict) -> torch.Tensor:
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

    def _step_pointwise_loss(self, out: BatchScores, batch: dict) -> torch.Tensor:
        """Stage 2 for steps: BCE(σ(r_i), Φ(latent of step i)) over the steps that have a target."""
        keys = [
            (batch["group_id"][o], step_item_id(batch["item_id"][o], k))
            for o, k in zip(out.step_owner.tolist(), out.step_index.tolist())
        ]
        known = [i for i, key in enumerate(keys) if key in self._target_lookup]
        if not known:
            return out.steps.sum() * 0.0
        values = torch.tensor([self._target_lookup[keys[i]] for i in known], dtype=torch.float32, device=self.device)
        index = torch.tensor(known, device=self.device)
        return pointwise_loss(out.steps[index], values[:, 0], target_weight(values[:, 1]))

    def _lookup_targets(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self._target_lookup[(g, i)] for g, i in zip(batch["group_id"], batch["item_id"])]
        values = torch.tensor(pairs, dtype=torch.float32, device=self.device)
        return values[:, 0], values[:, 1]

    # ---- the Thurstone fit between the stages -------------------------------------------------
    def fit_targets(self) -> pl.DataFrame:
        """Fit the training comparisons (and labels) into targets and store them for stage 2.
        Under distributed training rank 0 fits once and broadcasts the targets to every rank."""
        strategy = self.trainer.strategy
        fitted = self._fit_targets_here() if self.trainer.is_global_zero else None
        if self.trainer.world_size > 1:
            fitted = strategy.broadcast(fitted, src=0)
        targets, summary = fitted
        self.set_targets(targets)
        self.log_dict(summary, rank_zero_only=True)
        return targets

    def _fit_targets_here(self) -> tuple[pl.DataFrame, dict]:
        datamodule = self.trainer.datamodule
        train = datamodule.datasets["train"]
        comparisons = train.tables.comparisons.select("group_id", "item_a", "item_b", "p", "weight")
        extra = [anchor_comparisons(train.tables.items, self.calibration.label_weight)]
        if "step_labels" in train.tables.items.columns:
            extra.append(step_anchor_comparisons(train.tables.items, self.calibration.label_weight))
        comparisons = pl.concat([comparisons, *[frame for frame in extra if frame.height]])
        anchored = any(frame.height for frame in extra)
        use_prior = self.calibration.stage1_prior and self.schedule.pairwise_epochs
        prior = self._stage1_prior(datamodule, anchored) if use_prior else None
        targets, fit = fit_targets(
            comparisons, items=train.tables.items, prior=prior, link=self.calibration.link, l2=self.calibration.l2
        )
        if not fit.converged:
            raise RuntimeError(
                f"the Thurstone fit of {comparisons.height} comparisons did not converge in {fit.iterations} Newton "
                "steps: no targets were written; check the comparisons (contradictory weights?) or raise calibration.l2"
            )
        summary = {
            "fit/log_likelihood": fit.log_likelihood,
            "fit/converged": float(fit.converged),
            "fit/iterations": float(fit.iterations),
            "fit/mean_target": float(targets["target"].mean()),
            "fit/prior_groups": float(0 if prior is None else prior["group_id"].n_unique()),
        }
        print(
            f"Thurstone fit: {targets.height} items, {comparisons.height} comparisons, "
            f"log-likelihood {fit.log_likelihood:.2f}, converged={fit.converged} in {fit.iterations} Newton steps"
        )
        return targets, summary

    def set_targets(self, targets: pl.DataFrame) -> None:
        self.targets = targets
        self._target_lookup = {
            (g, i): (t, s) for g, i, t, s in targets.select("group_id", "item_id", "target", "std_err").iter_rows()
        }

    def _stage1_prior(self, datamodule, anchored: bool) -> pl.DataFrame | None:
        """Prior means from the stage-1 model for the groups `calibration.prior_groups` names.

        With anchors (absolute labels) and labels in the held-out split: μ = α·r + β, (α, β) fitted
        on the held-out comparisons and labels (`fit_score_map`), so μ sits on the anchor's scale.
        Otherwise μ = α·(r − mean of r in the group), α fitted on the held-out comparisons."""
        train = datamodule.datasets["train"]
        items = train.tables.items.select("group_id", "item_id").with_row_index("_row")
        if self.calibration.prior_groups == "sparse":
            sizes = items.group_by("group_id").len()
            sparse = sizes.filter(pl.col("len") <= self.calibration.sparse_group_size)["group_id"]
            items = items.filter(pl.col("group_id").is_in(sparse.implode()))
        if items.height == 0:
            return None
        held_out = datamodule.datasets.get("validation") or train
        alpha, beta, centred = self._score_map(held_out, anchored)
        scores = self.score_rows(train, items["_row"].to_numpy())
        r = pl.col("r") - pl.col("r").mean().over("group_id") if centred else pl.col("r")
        print(f"stage-1 prior for {items.height} items: latent ≈ {alpha:.3f}·r{'' if centred else f' + {beta:.3f}'}")
        return items.with_columns(pl.Series("r", scores)).select(
            "group_id", "item_id", (alpha * r + beta).alias("prior_mean")
        )

    def _score_map(self, dataset, anchored: bool) -> tuple[float, float, bool]:
        """(α, β, centred): the map from stage-1 scores to the latent scale, fitted on `dataset`."""
        labelled = ~np.isnan(dataset.label)
        if not len(dataset.comp_a) and not (anchored and labelled.any()):
            return 0.0, 0.0, True
        scores = self.score_rows(dataset, np.arange(dataset.n_items))
        margin = scores[dataset.comp_a] - scores[dataset.comp_b]
        if not (anchored and labelled.any()):
            return fit_score_scale(margin, dataset.p, dataset.weight, link=self.calibration.link), 0.0, True
        alpha, beta = fit_score_map(
            scores[dataset.comp_a], scores[dataset.comp_b], dataset.p, dataset.weight,
            scores[labelled], dataset.label[labelled],
            self.calibration.label_weight * dataset.label_weight[labelled], link=self.calibration.link,
        )  # fmt: skip
        return alpha, beta, False

    def score_rows(self, dataset, rows: np.ndarray, block: int = 4096) -> np.ndarray:
        """Scores of a dataset's items at these rows, tokenised and scored `block` at a time."""
        parts = [self.score_encoded(dataset.encode(rows[i : i + block])) for i in range(0, len(rows), block)]
        return np.concatenate(parts) if parts else np.zeros(0)

    # ---- the final calibration ----------------------------------------------------------------
    def on_train_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        datasets = self.trainer.datamodule.datasets
        if self.calibration.final == "platt":
            self.calibrate_on(datasets.get("validation"))
        if self.calibration.uncertainty == "laplace":
            self.head_posterior = fit_head_posterior(
                self, datasets.get("train"), self.calibration.uncertainty_items, self.seed
            )

    def calibrate_on(self, dataset) -> dict | None:
        """Fit σ(a·r + b) on a held-out split (every item of its groups: the lists it is scored on)
        and fold it into the head; the fit and the split's calibration before/after are recorded
        in `final_calibration` (and so in the export's unirank.json)."""
        from unirank.evaluation.bootstrap import ece_fast, grouped_interval
        from unirank.evaluation.calibration import both_orders, calibration_metrics
        from unirank.fitting.platt import fit_platt, pairwise_reading

        if dataset is None or dataset.n_items == 0:
            print("final calibration skipped: no validation split")
            return None
        if dataset.step_labels is not None:  # process models are read, and so calibrated, step by step
            scores, label = self._step_scores(dataset)
            comp_a = comp_b = p = weight = None
        else:
            scores = self.score_rows(dataset, np.arange(dataset.n_items))
            label, comp_a, comp_b, p, weight = dataset.label, dataset.comp_a, dataset.comp_b, dataset.p, dataset.weight
        try:
            fit = fit_platt(
                scores, label=label, comp_a=comp_a, comp_b=comp_b, p=p, weight=weight,
                reading=self.pairwise_reading, with_bias=self.scorer.has_output_bias(),
            )  # fmt: skip
        except ValueError as error:
            print(f"final calibration skipped: {error}")
            return None

        groups = dataset.item_group_index

        def measure(r: np.ndarray) -> dict:
            """ECE and Brier on the split; the ECE with a 95 % bootstrap interval over its groups."""
            if fit.evidence == "labels":
                known = ~np.isnan(label)
                prob, truth, owner = (
                    1 / (1 + np.exp(-r[known])),
                    label[known],
                    groups[known] if len(groups) == len(r) else None,
                )
            else:
                prob, truth = both_orders(pairwise_reading(r[comp_a], r[comp_b], self.pairwise_reading), p)
                owner = np.concatenate([groups[comp_a], groups[comp_a]])
            m = calibration_metrics(prob, truth)
            row = {"ece": round(m["ece"], 5), "brier": round(m["brier"], 5), "n": m["n"]}
            if owner is not None:
                row["ece_interval"], row["groups"] = grouped_interval(
                    lambda rows: ece_fast(prob[rows], truth[rows]), owner
                )
            return row

        self.scorer.fold_affine(fit.a, fit.b)
        calibrated = fit.a * scores + fit.b
        unit = "step " if dataset.step_labels is not None else ""
        self.final_calibration = {
            "method": "platt: sigmoid(a * logit + b), folded into the head",
            "a": fit.a,
            "b": fit.b,
            "fitted_on": f"validation split: {fit.n} {unit}{fit.evidence}",
            "before": measure(scores),
            "after": measure(calibrated),
        }
        if fit.evidence == "labels" and dataset.step_labels is None and not np.isnan(dataset.teacher).any():
            from unirank.evaluation.fusion import fit_fusion_weight

            self.final_calibration["fusion"] = fit_fusion_weight(
                calibrated, dataset.teacher, np.nan_to_num(dataset.label), groups
            )
        print(
            f"final calibration σ({fit.a:.3f}·r + {fit.b:.3f}) on {fit.n} validation {fit.evidence}: "
            f"ECE {self.final_calibration['before']['ece']:.4f} → {self.final_calibration['after']['ece']:.4f} "
            f"(in-sample; {len(dataset)} validation groups)"
        )
        return self.final_calibration

    def _step_scores(self, dataset, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """Every step's logit over a dataset's solutions, with its label (NaN where unlabelled)."""
        all_labels = dataset.step_labels.to_list()
        scores, labels = [], []
        rows = np.arange(dataset.n_items)
        for start in range(0, len(rows), block):
            chunk = rows[start : start + block]
            _, steps = self.score_encoded_steps(dataset.encode(chunk))
            for row, step_scores in zip(chunk, steps):
                known = all_labels[int(row)] or []
                scores.append(step_scores)
                labels.append([float(known[k]) if k < len(known) and known[k] is not None else np.nan
                               for k in range(len(step_scores))])  # fmt: skip
        return np.concatenate(scores), np.concatenate([np.asarray(x, dtype=np.float64) for x in labels])

    # ---- validation ---------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_probs, self._val_labels = [], []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        scores = self.score_batch(batch)
        size = len(batch["item_id"])
        if len(batch["comp_a"]):
            margin = scores[batch["comp_a"]] - scores[batch["comp_b"]]
            decided = batch["p"] != 0.5
            if decided.any():
                correct = (torch.sign(margin[decided]) == torch.sign(batch["p"][decided] - 0.5)).float().mean()
                self.log("val/pairwise_accuracy", correct, prog_bar=True, batch_size=int(decided.sum()), sync_dist=True)
            self.log("val/bt_loss", self._pairwise_loss(scores, batch), batch_size=size, sync_dist=True)
        labelled = ~torch.isnan(batch["label"])
        if labelled.any():
            self._val_probs.append(torch.sigmoid(scores[labelled]).detach().cpu())
            self._val_labels.append(batch["label"][labelled].detach().cpu())

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
