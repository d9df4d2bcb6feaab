"""The schedule's own figures in whichever loggers a run has (Lightning's: CSV, TensorBoard, MLflow,
Weights & Biases): the final calibration's ECE before and after on the validation split (with its
interval and the held-out figures) and the reliability diagram, logged when training ends, where
`self.log` no longer reaches. The Thurstone fit's figures (`fit/...`) and the validation metrics
(`val/...`) are logged through `self.log` as training runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import lightning as L


def final_calibration_metrics(record: dict) -> dict[str, float]:
    """The figures of a final-calibration record, flat, as loggers take them."""
    before, after = record["before"], record["after"]
    metrics = {
        "final/applied": float(bool(record.get("applied", True))),
        "final/ece_before": before["ece"],
        "final/ece_after": after["ece"],
        "final/brier_after": after["brier"],
    }
    if after.get("ece_interval"):
        metrics["final/ece_after_low"], metrics["final/ece_after_high"] = after["ece_interval"]
    held_out = record.get("held_out")
    if held_out:
        metrics["final/held_out_ece_before"] = held_out["before"]["ece"]
        metrics["final/held_out_ece_after"] = held_out["after"]["ece"]
    return metrics


def log_final_calibration(trainer: L.Trainer, record: dict | None) -> None:
    """Log the record's figures and its reliability diagram to each of the trainer's loggers (the
    image as each tool takes one: a TensorBoard figure, an MLflow artifact, a W&B image, a PNG in
    the CSV logger's folder)."""
    if not record or not trainer.is_global_zero or not trainer.loggers:
        return
    from unirank.model.card import reliability_figure

    metrics = final_calibration_metrics(record)
    for logger in trainer.loggers:
        logger.log_metrics(metrics, step=trainer.global_step)
    figure = reliability_figure(record.get("reliability"))
    if figure is None:
        return
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as folder:
        png = Path(folder) / "reliability.png"
        figure.savefig(png, dpi=100)
        for logger in trainer.loggers:
            _log_image(logger, figure, png, trainer.global_step)
    plt.close(figure)
    for logger in trainer.loggers:
        logger.save()


def _log_image(logger, figure, png: Path, step: int) -> None:
    from lightning.pytorch import loggers

    if isinstance(logger, loggers.TensorBoardLogger):
        logger.experiment.add_figure("final/reliability", figure, global_step=step, close=False)
    elif isinstance(logger, loggers.MLFlowLogger):
        logger.experiment.log_artifact(logger.run_id, str(png))
    elif isinstance(logger, loggers.WandbLogger):
        import wandb

        logger.experiment.log({"final/reliability": wandb.Image(str(png))})
    elif isinstance(logger, loggers.CSVLogger):
        Path(logger.log_dir).mkdir(parents=True, exist_ok=True)
        (Path(logger.log_dir) / "reliability.png").write_bytes(png.read_bytes())
