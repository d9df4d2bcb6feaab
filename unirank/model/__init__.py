"""unirank's inference surface: `Model` loads, predicts, ranks, scores and saves a trained reranker
or reward model. Importing it imports no Lightning, no `training/` and no `evaluation/`."""

import logging

# bitsandbytes (imported by transformers and peft whenever it is installed) warns on every start that
# an AVX512-BF16 CPU inference kernel is not installed; unirank turns that inference path off for
# QLoRA training (`unirank.model.quantized.keep_trainable_layout`), so the notice says nothing here.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

from unirank.model.backbone import ModelFolderError, RemoteCodeError, load_backbone  # noqa: E402
from unirank.model.model import Model  # noqa: E402
from unirank.model.scorer import Scorer  # noqa: E402

__all__ = ["Model", "ModelFolderError", "RemoteCodeError", "Scorer", "load_backbone"]
