"""A model folder: the weights (safetensors), the tokenizer, `unirank.json` and the side files.

The folder loads in transformers and sentence-transformers unchanged: its config's
`sentence_transformers.activation_fn` is Sigmoid (a yes/no head: the causal LM with sentence-
transformers' `LogitScore` module), so `CrossEncoder(folder).predict(pairs)` returns σ(r), the
calibrated probability. `unirank.json` records the domain, the adapter (the input format), the
schedule and the calibration; the head posterior and the novelty reference are side files that
only unirank reads. This module is the only one that reads or writes any of them.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError

from unirank import adapters
from unirank.adapters.base import PAIR_HEADER
from unirank.model.card import model_card, reliability_plot
from unirank.model.novelty import NOVELTY_FILE, load_reference, save_reference
from unirank.model.posterior import POSTERIOR_FILE, load_posterior, save_posterior

INFO_FILE = "unirank.json"
SIGMOID = "torch.nn.modules.activation.Sigmoid"


def check_save_target(path: Path, source: str | Path | None, overwrite: bool) -> None:
    """Before a model folder is written to `path`: never the folder the model was loaded from
    (`source`), never over what unirank did not write, over an earlier export only with overwrite."""
    from unirank.atomic import OutputError, check_output_folder

    if source is not None and Path(source).is_dir() and Path(path).resolve() == Path(source).resolve():
        raise OutputError(f"{path}: the model was loaded from this folder; write it as a new export in another folder")
    check_output_folder(path, INFO_FILE, "unirank export", overwrite)


def read_info(folder: Path) -> dict:
    """The folder's unirank.json, checked (`unirank.model.checks`; errors name the file)."""
    from unirank.model.backbone import ModelFolderError
    from unirank.model.checks import check_info

    path = folder / INFO_FILE
    if not path.exists():
        raise ModelFolderError(f"{folder}: not a unirank export (no {INFO_FILE})")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelFolderError(f"{path}: not valid JSON ({error})") from None
    return check_info(info, path)


def adapter_from_spec(spec: dict, source: str | Path, domain: str | None = None) -> adapters.Adapter:
    """Rebuild an adapter from {"class", "domain", "init_args"} (as `UnirankModule.config()` records
    it): one of `unirank.adapters`, or the adapter of a registered domain (`unirank.domains`); the
    class is never imported from a path the file names."""
    from unirank import domains
    from unirank.model.backbone import ModelFolderError

    adapter_class = getattr(adapters, spec["class"], None)
    if not (isinstance(adapter_class, type) and issubclass(adapter_class, adapters.Adapter)):
        try:
            adapter_class = domains.adapter_class(spec["class"], spec.get("domain") or domain or "")
        except ValueError as error:
            raise ModelFolderError(f"{source}: unknown adapter {spec['class']!r}: {error}") from None
    try:
        return adapter_class(**spec["init_args"])
    except (TypeError, ValueError) as error:  # an edited record: an unknown or out-of-range setting
        raise ModelFolderError(
            f"{source}: adapter {spec['class']} cannot take {spec['init_args']!r} ({error})"
        ) from None


def load_folder(folder: Path, trust_remote_code: bool = False):
    """(`Scorer` in eval mode with its calibration record, head posterior and novelty reference, info)."""
    from unirank.model.backbone import ModelFolderError, load_backbone
    from unirank.model.checks import check_side_files
    from unirank.model.scorer import Scorer

    info = read_info(folder)
    adapter = adapter_from_spec(info["adapter"], folder, info.get("domain"))
    model, tokenizer = load_backbone(
        str(folder), trust_remote_code=trust_remote_code, head=info.get("head", "scalar"), complete=True
    )
    scorer = Scorer(model, tokenizer, adapter)
    scorer.final_calibration = info["calibration"].get("final_fit")
    scorer.pairwise_reading = info["calibration"].get("pairwise_reading", "bradley-terry")
    named = [name for key, name in (("uncertainty", POSTERIOR_FILE), ("novelty", NOVELTY_FILE)) if info.get(key)]
    missing = [name for name in named if not (folder / name).is_file()]
    if missing:  # without them a score has no standard error or novelty, and nothing would say why
        raise ModelFolderError(
            f"{folder}: {INFO_FILE} names {', '.join(missing)}, which the folder does not hold (copy the whole "
            f"folder, or set {' and '.join(k for k in ('uncertainty', 'novelty') if info.get(k))} to null in {INFO_FILE})"
        )
    try:
        scorer.head_posterior = load_posterior(folder, info.get("uncertainty"))
        scorer.novelty = load_reference(folder) if info.get("novelty") else None
    except (OSError, KeyError, ValueError, RuntimeError, SafetensorError) as error:  # a damaged file
        raise ModelFolderError(f"{folder}: a side file cannot be read ({error})") from None
    check_side_files(scorer, folder)
    return scorer.eval(), info


def write_folder(scorer, info: dict, folder: Path, base: str, trust_remote_code: bool = False, name: str = "") -> None:
    """Write `scorer` and `info` into the (new, empty) `folder`, with its model card (README.md,
    `unirank.model.card`; name: the folder's final name, for the card's usage lines). base: where a
    yes/no head's causal LM takes its other LM-head rows from (the base model, or the folder the
    model was loaded from)."""
    from unirank.model.lora import has_adapters, merge_adapters
    from unirank.model.yes_no import answer_token_ids, export_causal_lm

    model, tokenizer = scorer.model, scorer.tokenizer
    if has_adapters(model):  # a LoRA model loaded from a checkpoint: saved merged, as every export is
        merge_adapters(model)
    if info.get("head") == "yes-no":
        yes, no = answer_token_ids(tokenizer, ("yes", "no"))
        export_causal_lm(model, base, yes, no, folder, trust_remote_code)
    else:
        model.config.sentence_transformers = {"activation_fn": SIGMOID}
        model.save_pretrained(folder, safe_serialization=True)
    _save_tokenizer(scorer, folder)
    info = {**info, "calibration": {**info["calibration"], "final_fit": scorer.final_calibration}}
    if info.get("lora"):  # the adapter alone travels only where this write includes it
        info["lora"] = {**info["lora"], "adapter": "adapter" if (folder / "adapter").is_dir() else None}
    info["uncertainty"] = (
        None if scorer.head_posterior is None else {**scorer.head_posterior.info, "file": POSTERIOR_FILE}
    )
    info["novelty"] = None if scorer.novelty is None else {
        "method": "cosine distance of the backbone's mean-pooled final state to the nearest reference",
        "percentile": "among the references' distances to the nearest reference of another context",
        "references": len(scorer.novelty.states), "file": NOVELTY_FILE,
    }  # fmt: skip
    if scorer.head_posterior is not None:
        save_posterior(scorer.head_posterior, folder)
    if scorer.novelty is not None:
        save_reference(scorer.novelty, folder)
    (folder / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    (folder / "README.md").write_text(model_card(info, name or folder.name), encoding="utf-8")
    reliability_plot(info, folder / "reliability.png")


def _save_tokenizer(scorer, folder: Path) -> None:
    """The tokenizer with model_max_length = the adapter's, and (decoders with a chat template) a
    template that renders CrossEncoder's (query, document) pairs as the adapter does."""
    tokenizer, adapter = scorer.tokenizer, scorer.adapter
    saved_template, saved_length = tokenizer.chat_template, tokenizer.model_max_length
    if not (saved_template or "").startswith(PAIR_HEADER):  # a loaded export already has it
        template = adapter.pair_template(tokenizer)
        tokenizer.chat_template = template if template is not None else saved_template
    tokenizer.model_max_length = adapter.max_length
    try:
        tokenizer.save_pretrained(folder)
    finally:
        tokenizer.chat_template, tokenizer.model_max_length = saved_template, saved_length
