"""unirank's inference surface: `Model` loads, predicts, ranks, scores and saves a trained reranker
or reward model. Importing it imports no Lightning, no `training/` and no `evaluation/`."""

from unirank.model.backbone import ModelFolderError, RemoteCodeError, load_backbone
from unirank.model.model import Model
from unirank.model.scorer import Scorer

__all__ = ["Model", "ModelFolderError", "RemoteCodeError", "Scorer", "load_backbone"]
