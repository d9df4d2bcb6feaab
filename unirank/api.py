"""Training from Python, for people who build rerankers and reward models in code.

import unirank
data = unirank.UnirankDataModule(unirank.Preferences("prefs.jsonl", validation_fraction=0.2))
module = unirank.UnirankModule(adapter=unirank.ChatAdapter(max_length=256), schedule=unirank.Schedule(2, 1))
unirank.fit(module, data)
unirank.export_model(module, "model")
model = unirank.Model.from_pretrained("model")
"""

from __future__ import annotations

import lightning as L


def fit(module, data, **trainer_options) -> L.Trainer:
    """Train `module` (a UnirankModule) on `data` (a UnirankDataModule) through its whole schedule:
    a Lightning Trainer with max_epochs = the schedule's epochs, no logger and no checkpoints unless
    given in `trainer_options` (any `lightning.Trainer` argument). Returns the trainer."""
    options = {"logger": False, "enable_checkpointing": False, "enable_model_summary": False}
    trainer = L.Trainer(max_epochs=module.schedule.total_epochs, **{**options, **trainer_options})
    trainer.fit(module, datamodule=data)
    return trainer
