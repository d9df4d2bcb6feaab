"""The schedule's and the calibration's settings: what a recipe's `model.schedule` and
`model.calibration` set (plain frozen dataclasses, so checkpoints carry them as data)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Schedule:
    """Epochs of each stage, in order: pairwise, pointwise; a run lasts their sum."""

    pairwise_epochs: int = 1
    pointwise_epochs: int = 1

    def __post_init__(self) -> None:
        counts = {"pairwise": self.pairwise_epochs, "pointwise": self.pointwise_epochs}
        negative = [f"{name}_epochs={count}" for name, count in counts.items() if count < 0]
        if negative:
            raise ValueError(f"schedule: {', '.join(negative)}: epochs cannot be negative")
        if self.total_epochs == 0:
            raise ValueError("schedule: every stage has 0 epochs, so nothing would be trained")

    @property
    def total_epochs(self) -> int:
        return self.pairwise_epochs + self.pointwise_epochs

    def stage_at(self, epoch: int) -> str:
        """The stage an epoch (0-based) trains in."""
        return "pairwise" if epoch < self.pairwise_epochs else "pointwise"

    def check_epochs(self, max_epochs: int | None) -> None:
        """A trainer must run exactly the schedule's epochs."""
        if max_epochs != self.total_epochs:
            raise ValueError(
                f"trainer.max_epochs={max_epochs} but the schedule has "
                f"{self.pairwise_epochs} pairwise + {self.pointwise_epochs} pointwise epochs"
            )

    @property
    def stages(self) -> list[str]:
        """The stages that have epochs, in order."""
        counts = (("pairwise", self.pairwise_epochs), ("pointwise", self.pointwise_epochs))
        return [name for name, count in counts if count]


@dataclass(frozen=True)
class Calibration:
    """The Thurstone fit between the stages, and the final calibration after training.

    link: thurstone (Φ) or bradley-terry (σ); l2: prior precision; label_weight: weight of an
    absolute label's comparison against the anchor (× an item's own `label_weight` column);
    stage1_prior: stage-1 scores, mapped onto the latent scale on the validation split, are the
    prior means; prior_groups: for groups of at most `sparse_group_size` items ("sparse": a chat
    prompt with one pair) or for every group ("all": targets follow the stage-1 order where labels
    and comparisons are silent); final:
    "platt" fits σ(a·r + b) on the validation split after training and folds it into the head (see
    unirank.fitting.platt), "none" leaves the logits as trained; uncertainty: "laplace" then fits
    the head's posterior on up to `uncertainty_items` training items (see unirank.training.uncertainty), so
    scores come with a standard error.
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


def pairwise_reading(schedule: Schedule, calibration: Calibration) -> str:
    """How two logits of the trained model read as P(a ≻ b): thurstone once trained on Thurstone
    targets, else bradley-terry."""
    return "thurstone" if schedule.pointwise_epochs > 0 and calibration.link == "thurstone" else "bradley-terry"
