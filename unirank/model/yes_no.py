"""The yes/no head form: a causal LM scored as logit("yes") − logit("no") at the last token.

That score is linear in the final state h: (W_yes − W_no)·h (+ b_yes − b_no), so unirank trains it
as a scalar head whose weight starts at W_yes − W_no, the LM's own answer before any training (the
Qwen3-Reranker form). The export writes the causal LM back with the trained head folded into the
"yes" row of the LM head (W_yes ← W_no + w, untied from the input embeddings), so
logit(yes) − logit(no) is exactly the trained (and calibrated) score, and sentence-transformers'
CrossEncoder reads it with its LogitScore module.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

LOGIT_SCORE = "sentence_transformers.cross_encoder.modules.logit_score.LogitScore"
TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
TEXT_GENERATION = {
    "transformer_task": "text-generation",
    "modality_config": {
        "text": {"method": "forward", "method_output_name": "logits"},
        "message": {"method": "forward", "method_output_name": "logits", "format": "flat"},
    },
    "module_output_name": "causal_logits",
}
"""sentence-transformers' Transformer module reading a causal LM (as CrossEncoder.save_pretrained writes it)."""


def answer_token_ids(tokenizer, answers: tuple[str, str]) -> tuple[int, int]:
    """The ids of the two answer tokens; each must be one token of the vocabulary."""
    ids = []
    for answer in answers:
        pieces = tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ValueError(f"the yes/no head needs {answer!r} to be one token of the vocabulary; it is {len(pieces)}")
        ids.append(pieces[0])
    return ids[0], ids[1]


def scorer_from_causal_lm(causal: nn.Module, yes: int, no: int) -> nn.Module:
    """A *ForSequenceClassification model with the causal LM's backbone (the same tensors) and a
    scalar head equal to the LM head's yes row minus its no row."""
    from transformers import AutoModelForSequenceClassification

    config = causal.config
    config.num_labels = 1
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    setattr(model, model.base_model_prefix, causal.base_model)
    rows = causal.get_output_embeddings().weight.detach()
    model.score = nn.Linear(rows.shape[1], 1, bias=False, dtype=rows.dtype)
    with torch.no_grad():
        model.score.weight.copy_((rows[yes] - rows[no])[None])
    return model


def export_causal_lm(model: nn.Module, base: str, yes: int, no: int, folder: Path, trust_remote_code: bool) -> None:
    """Write the causal LM whose logit(yes) − logit(no) at the last token is `model`'s score: the
    base LM with `model`'s backbone and W_yes ← W_no + w in an untied LM head; then the
    sentence-transformers modules (Transformer as text-generation, LogitScore(yes, no))."""
    from transformers import AutoModelForCausalLM

    from unirank.model.backbone import resolve_model_path

    causal = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(base), use_safetensors=True, trust_remote_code=trust_remote_code, dtype=torch.float32
    )
    causal.base_model.load_state_dict(model.base_model.state_dict())
    head = causal.get_output_embeddings()
    weight = head.weight.detach().clone()
    weight[yes] = weight[no] + model.score.weight.detach()[0].to(weight.dtype)
    head.weight = nn.Parameter(weight)
    causal.config.tie_word_embeddings = False
    if hasattr(causal.config, "get_text_config"):
        causal.config.get_text_config().tie_word_embeddings = False
    causal.config.architectures = [type(causal).__name__]
    causal.save_pretrained(folder, safe_serialization=True)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_LogitScore", "type": LOGIT_SCORE},
    ], indent=2) + "\n")  # fmt: skip
    (folder / "sentence_bert_config.json").write_text(json.dumps(TEXT_GENERATION, indent=2) + "\n")
    (folder / "1_LogitScore").mkdir()
    (folder / "1_LogitScore" / "config.json").write_text(
        json.dumps({"true_token_id": yes, "false_token_id": no, "module_input_name": "causal_logits"}) + "\n"
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"model_type": "CrossEncoder", "activation_fn": "torch.nn.modules.activation.Sigmoid"}) + "\n"
    )
