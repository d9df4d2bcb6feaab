"""What connects the module and the data module, as callbacks: the tokenizer handed to the data,
the data's splits handed to the fits, so neither the module nor the data module reads the other
through `trainer`. `UnirankModule.configure_callbacks` adds them to every run."""

from __future__ import annotations

import lightning as L

from unirank.progress import ProgressLines
from unirank.training.final_calibration import calibrate_on
from unirank.training.pointwise_targets import fit_stage_targets
from unirank.training.sharding import is_sharded
from unirank.training.tracking import log_final_calibration
from unirank.training.uncertainty import fit_uncertainty


class TrainingProgress(L.Callback):
    """A line every 5 % of the training steps (step, epoch, stage, loss, time left) where output is
    not a terminal: a fit redirected to a log shows where it is."""

    def on_train_start(self, trainer: L.Trainer, module) -> None:
        # one process writes the lines under distributed training
        self.lines = ProgressLines(
            trainer.estimated_stepping_batches, "training steps", enabled=None if trainer.is_global_zero else False
        )
        if trainer.is_global_zero and trainer.datamodule is not None and not trainer.fast_dev_run:
            print(scoring_plan(module, getattr(trainer.datamodule, "datasets", {})), flush=True)

    def on_train_batch_end(self, trainer: L.Trainer, module, outputs, batch, batch_idx: int) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        note = f"epoch {trainer.current_epoch} ({module.stage})"
        if loss is not None:
            note += f", loss {float(loss):.4f}"
        self.lines.update(trainer.global_step, note)


def scoring_plan(module, datasets: dict) -> str:
    """What the fits around training will score, said before training starts: at real scale these
    passes take minutes (`prior_groups: all` scores every training item)."""
    train, validation, calibration = datasets.get("train"), datasets.get("validation"), module.calibration
    parts = []
    if calibration.stage1_prior and module.schedule.pairwise_epochs and module.schedule.pointwise_epochs and train:
        scope = (
            "every one"
            if calibration.prior_groups == "all"
            else f"those in groups of ≤ {calibration.sparse_group_size}"
        )
        parts.append(f"{scope} of the {train.n_items:,} training items for the stage-1 priors")
    if calibration.final == "platt" and validation:
        parts.append(f"{validation.n_items:,} validation items for the final calibration")
    if calibration.uncertainty == "laplace" and train:
        parts.append(f"{min(train.n_items, calibration.uncertainty_items):,} training items for the head posterior")
    return (
        "besides training, this run scores " + ("; ".join(parts) if parts else "nothing") + " (progress lines follow)"
    )


class AttachEncoder(L.Callback):
    """Hand the module's tokenizer and adapter to the data module, before any loader is built, and
    the data's group sources (a Mixture's) to the module's validation."""

    def setup(self, trainer: L.Trainer, module, stage: str) -> None:
        datamodule = trainer.datamodule
        if datamodule is not None and hasattr(datamodule, "attach") and datamodule.tokenizer is None:
            datamodule.attach(module.tokenizer, module.adapter, module.scorer.layout)
        if datamodule is not None and hasattr(datamodule, "group_sources"):
            module.group_sources = datamodule.group_sources()


class PointwiseTargets(L.Callback):
    """At the first pointwise epoch (under fast_dev_run: at once) fit the Thurstone targets on the
    training split and hand them to the module. Under distributed training rank 0 fits once and
    broadcasts the targets to every rank (sharded weights: every rank scores, as gathering the
    weights needs them all; rank 0's fit is the one kept). A run resumed in stage 2 keeps its
    checkpoint's targets."""

    def on_train_epoch_start(self, trainer: L.Trainer, module) -> None:
        if "pointwise" not in module.stages_now() or module.targets is not None:
            return
        datasets = trainer.datamodule.datasets
        use_prior = module.calibration.stage1_prior and module.schedule.pairwise_epochs > 0
        fitted = None
        if trainer.is_global_zero or is_sharded(trainer):
            fitted = fit_stage_targets(
                module.scorer, datasets["train"], datasets.get("validation"), module.calibration, use_prior
            )
        if trainer.world_size > 1:
            fitted = trainer.strategy.broadcast(fitted, src=0)
        fitted_targets, summary = fitted
        module.set_targets(fitted_targets)
        module.log_dict(summary, rank_zero_only=True)


class FinalFits(L.Callback):
    """When training ends: the final calibration on the validation split (`calibration.final:
    platt`), then the head posterior and the novelty reference on the training split
    (`calibration.uncertainty: laplace`). Every rank fits the same (and must, with sharded weights)."""

    def on_train_end(self, trainer: L.Trainer, module) -> None:
        if trainer.sanity_checking:
            return
        datasets, calibration = trainer.datamodule.datasets, module.calibration
        if calibration.final == "platt":
            record = calibrate_on(module.scorer, datasets.get("validation"), module.pairwise_reading)
            log_final_calibration(trainer, record)
        if calibration.uncertainty == "laplace":
            module.scorer.head_posterior, module.scorer.novelty = fit_uncertainty(
                module.scorer, datasets.get("train"), calibration.uncertainty_items, module.seed
            )
