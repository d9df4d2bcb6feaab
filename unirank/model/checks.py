"""What a model folder must be before unirank scores with it: every value of unirank.json in its
range, weights that load without anything initialised at random, side files that fit the model.
Each failure is a `ModelFolderError` naming the file and the problem (never a library traceback,
never a silent score)."""

from __future__ import annotations

from pathlib import Path

from unirank.data.values import is_finite_number
from unirank.model.backbone import ModelFolderError

FORMAT_MAJOR = 0
"""unirank.json's format: folders written by a later major version are refused."""


def check_info(info, path: Path) -> dict:
    """unirank.json's content: a mapping with the keys unirank reads, each of the right type and range."""
    if not isinstance(info, dict):
        raise ModelFolderError(f"{path}: must hold a JSON object, got {type(info).__name__}")
    for key, kind in (("domain", str), ("adapter", dict), ("calibration", dict)):
        if not isinstance(info.get(key), kind):
            raise ModelFolderError(f"{path}: '{key}' must be a {kind.__name__}, got {info.get(key)!r}")
    version = str(info.get("unirank_version", "0"))
    major = version.split(".")[0]
    if not major.isdigit() or int(major) > FORMAT_MAJOR:
        raise ModelFolderError(f"{path}: written by unirank {version}, newer than this one reads; upgrade unirank")
    adapter = info["adapter"]
    if not isinstance(adapter.get("class"), str) or not isinstance(adapter.get("init_args"), dict):
        raise ModelFolderError(f"{path}: 'adapter' needs a 'class' name and an 'init_args' object")
    length = adapter["init_args"].get("max_length")
    if length is not None and not (isinstance(length, int) and not isinstance(length, bool) and length > 0):
        raise ModelFolderError(f"{path}: adapter max_length must be a positive integer, got {length!r}")
    final = info["calibration"].get("final_fit")
    if final is not None:
        for key in ("a", "b"):
            value = final.get(key) if isinstance(final, dict) else None
            if not is_finite_number(value):
                raise ModelFolderError(f"{path}: calibration.final_fit.{key} must be a finite number, got {value!r}")
    for block in ("final_fit", "recalibration"):
        record = info["calibration"].get(block)
        if record is not None and not isinstance(record, dict):
            raise ModelFolderError(f"{path}: calibration.{block} must be an object or null, got {record!r}")
        fusion = record.get("fusion") if record else None
        if fusion is not None:
            weight = fusion.get("first_stage_weight") if isinstance(fusion, dict) else "not an object"
            if weight is not None and not (is_finite_number(weight) and weight >= 0):
                raise ModelFolderError(
                    f"{path}: calibration.{block}.fusion.first_stage_weight must be a finite number >= 0, "
                    f"got {weight!r}"
                )
    _check_side_file_info(info, path)
    reading = info["calibration"].get("pairwise_reading", "bradley-terry")
    if reading not in ("thurstone", "bradley-terry"):
        raise ModelFolderError(
            f"{path}: calibration.pairwise_reading must be thurstone or bradley-terry, got {reading!r}"
        )
    if info.get("head", "scalar") not in ("scalar", "yes-no"):
        raise ModelFolderError(f"{path}: 'head' must be 'scalar' or 'yes-no', got {info.get('head')!r}")
    return info


def _check_side_file_info(info: dict, path: Path) -> None:
    """The records of the side files: `uncertainty` with a positive prior precision and a
    non-negative effective parameter count; `novelty` an object (or null)."""
    uncertainty = info.get("uncertainty")
    if uncertainty:
        if not isinstance(uncertainty, dict):
            raise ModelFolderError(f"{path}: 'uncertainty' must be an object, got {uncertainty!r}")
        precision, effective = uncertainty.get("prior_precision"), uncertainty.get("effective_parameters")
        if not (is_finite_number(precision) and precision > 0):
            raise ModelFolderError(
                f"{path}: uncertainty.prior_precision must be a finite number > 0, got {precision!r}"
            )
        if not (is_finite_number(effective) and effective >= 0):
            raise ModelFolderError(
                f"{path}: uncertainty.effective_parameters must be a finite number >= 0, got {effective!r}"
            )
    novelty = info.get("novelty")
    if novelty is not None and not isinstance(novelty, dict):
        raise ModelFolderError(f"{path}: 'novelty' must be an object or null, got {novelty!r}")


def check_side_files(scorer, folder: Path) -> None:
    """The head posterior's covariance is (width + 1)², finite, with a non-negative diagonal, for
    the head's input width; the novelty reference's states are finite and as wide as the backbone's
    hidden state, with a percentile scale (`own_novelty`) of finite sorted values: one per state as
    training fits it, one per labelled input after `unirank recalibrate` re-anchors it."""
    import numpy as np

    width = scorer.final_layer().weight.shape[1]
    posterior = scorer.head_posterior
    if posterior is not None and posterior.covariance.shape != (width + 1, width + 1):
        raise ModelFolderError(
            f"{folder}/head_posterior.safetensors: covariance {posterior.covariance.shape} does not fit a head "
            f"of {width} inputs (expected {(width + 1, width + 1)})"
        )
    if posterior is not None and not (
        np.isfinite(posterior.covariance).all() and (np.diag(posterior.covariance) >= 0).all()
    ):
        raise ModelFolderError(
            f"{folder}/head_posterior.safetensors: the covariance holds non-finite values or a negative variance"
        )
    hidden = getattr(scorer.model.config, "hidden_size", None)
    reference = scorer.novelty
    if (
        reference is not None
        and hidden is not None
        and (reference.states.ndim != 2 or reference.states.shape[1:] != (hidden,))
    ):
        raise ModelFolderError(
            f"{folder}/novelty_reference.safetensors: states of width {reference.states.shape[1:]} do not fit "
            f"a backbone of hidden size {hidden}"
        )
    if reference is not None and not (
        reference.own_novelty.ndim == 1
        and len(reference.own_novelty) >= 1
        and np.isfinite(reference.states).all()
        and np.isfinite(reference.own_novelty).all()
        and (np.diff(reference.own_novelty) >= 0).all()
    ):
        raise ModelFolderError(
            f"{folder}/novelty_reference.safetensors: states must be finite and own_novelty (the percentile scale) "
            "a non-empty, sorted list of finite values"
        )
