"""The schedule's figures reach whichever logger a run has: each logger's own reader finds the
Thurstone fit's figures, the validation metrics, the final calibration's ECE and the reliability
diagram (TensorBoard's event reader, MLflow's client on a local store, W&B's offline run files)."""

import time

import lightning as L
from lightning.pytorch import loggers

from unirank.adapters import ChatAdapter
from unirank.data.datamodule import UnirankDataModule
from unirank.domains.chat.source import Preferences
from unirank.module import Schedule, UnirankModule

from .conftest import REPO

FIGURES = {"fit/log_likelihood", "val/pairwise_accuracy", "final/ece_before", "final/ece_after"}


def fit_with(logger) -> None:
    module = UnirankModule(model="tiny", adapter=ChatAdapter(max_length=48), schedule=Schedule(1, 1), lr=1e-3)
    data = UnirankDataModule(Preferences(str(REPO / "data/demo-preferences.jsonl"), validation_fraction=0.3))
    L.Trainer(max_epochs=2, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, log_every_n_steps=1).fit(module, datamodule=data)  # fmt: skip


def test_tensorboard_reads_the_figures_and_the_reliability_diagram(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = loggers.TensorBoardLogger(save_dir=str(tmp_path))
    fit_with(logger)
    events = EventAccumulator(logger.log_dir, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert FIGURES <= set(events.Tags()["scalars"]) and "final/reliability" in events.Tags()["images"]
    assert 0 <= events.Scalars("final/ece_after")[-1].value <= 1


def test_mlflow_reads_the_figures_and_the_reliability_diagram_from_a_local_store(tmp_path, monkeypatch):
    """A local file store (mlflow-skinny has no SQL store; MLflow 3 wants the file store asked for)."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = f"file:{tmp_path / 'mlruns'}"
    logger = loggers.MLFlowLogger(experiment_name="unirank", tracking_uri=store,
                                  artifact_location=str(tmp_path / "artifacts"))  # fmt: skip
    fit_with(logger)
    client = MlflowClient(tracking_uri=store)
    run = client.get_run(logger.run_id)
    assert FIGURES <= set(run.data.metrics)
    assert "reliability.png" in [a.path for a in client.list_artifacts(logger.run_id)]


def wandb_history_keys(path) -> set[str]:
    """The history keys of an offline run file: W&B's record log (a 7-byte file header, then
    LevelDB-log blocks of 32 KiB whose records carry W&B's protobuf `Record`s)."""
    import struct

    from wandb.proto import wandb_internal_pb2

    raw, block, position, pending, keys = path.read_bytes(), 32768, 7, b"", set()
    while position + 7 <= len(raw):
        left = block - position % block
        if left < 7:  # a block's tail too short for a record header is padding
            position += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[position : position + 7])
        data, position = raw[position + 7 : position + 7 + length], position + 7 + length
        pending = data if kind in (1, 2) else pending + data
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                keys |= {item.key or "/".join(item.nested_key) for item in record.history.item}
    return keys


def test_wandb_offline_run_files_hold_the_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = loggers.WandbLogger(save_dir=str(tmp_path), offline=True, project="unirank")
    fit_with(logger)
    logger.experiment.finish()
    import wandb

    wandb.teardown()  # stops W&B's service process, which writes the run file behind the client
    run = next(tmp_path.glob("wandb/offline-run-*"))
    deadline, keys = time.monotonic() + 60, set()
    while not FIGURES <= keys and time.monotonic() < deadline:  # a loaded machine flushes late
        keys = wandb_history_keys(next(run.glob("run-*.wandb")))
        time.sleep(0.5)
    assert FIGURES <= keys and "final/reliability/_type" in keys
    assert list(run.glob("files/media/images/final/reliability*.png"))
