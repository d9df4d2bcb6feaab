"""unirank: train rerankers and reward models with one trainer, calibrated by a Thurstone fit.

The names below load on first use (so `import unirank` stays light): data sources and the data
module, adapters, the module and its settings, `fit`, the model (`unirank.Model`), evaluation and export.
"""

import warnings
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Preferences": "unirank.domains.chat.source",
    "StepSolutions": "unirank.domains.process.source",
    "TablesDir": "unirank.data.sources",
    "MinedBeir": "unirank.domains.retrieval.source",
    "MiningConfig": "unirank.mining.pipeline",
    "UnirankDataModule": "unirank.data.datamodule",
    "read_tables": "unirank.data.tables",
    "RetrievalAdapter": "unirank.adapters",
    "ChatAdapter": "unirank.adapters",
    "ProcessAdapter": "unirank.adapters",
    "UnirankModule": "unirank.module",
    "Schedule": "unirank.module",
    "Calibration": "unirank.module",
    "LoRA": "unirank.module",
    "Packing": "unirank.module",
    "fit": "unirank.api",
    "Model": "unirank.model",
    "Scorer": "unirank.model",
    "evaluate_preferences": "unirank.domains.chat.evaluation",
    "evaluate_retrieval": "unirank.domains.retrieval.evaluation",
    "Domain": "unirank.domains",
    "export_model": "unirank.training.export",
}
_RENAMED = {"Predictor": "Model", "load_scorer": "Model.from_pretrained"}
"""Old names kept for one release (0.1 → 0.2): they warn and give the new object."""
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    if name in _RENAMED:
        warnings.warn(f"unirank.{name} is deprecated; use unirank.{_RENAMED[name]}", FutureWarning, stacklevel=2)
        from unirank.model import Model

        return Model if name == "Predictor" else Model.from_pretrained
    raise AttributeError(f"module 'unirank' has no attribute {name!r}")
