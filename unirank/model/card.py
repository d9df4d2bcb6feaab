"""The model card: README.md of a model folder, in the Hugging Face format (a YAML header that the
Hub reads, then what the model is, how it was trained, how well it is calibrated, and how to use
it), written from unirank.json on every save so it always says what the folder holds."""

from __future__ import annotations

import json
from pathlib import Path

KIND = {"retrieval": "reranker", "chat": "reward-model", "process": "process-reward-model"}
PIPELINE = {"retrieval": "text-ranking", "chat": "text-classification", "process": "text-classification"}


def model_card(info: dict, folder_name: str) -> str:
    """README.md for a model folder described by `info` (its unirank.json record)."""
    domain = info["domain"]
    header = {
        "library_name": "sentence-transformers",
        "pipeline_tag": PIPELINE.get(domain, "text-classification"),
        "tags": ["unirank", "cross-encoder", KIND.get(domain, domain), "calibrated"],
        "base_model": hub_name(info.get("base_model")),
        "metrics": sorted(info.get("validation", {})),
    }
    header = {key: value for key, value in header.items() if value}
    lines = ["---", *(f"{key}: {json.dumps(value, ensure_ascii=False)}" for key, value in header.items()), "---", ""]
    lines += [f"# A calibrated {KIND.get(domain, domain).replace('-', ' ')} trained with unirank", ""]
    lines += _training(info) + _calibration(info) + _validation(info) + _usage(info, folder_name)
    return "\n".join(lines) + "\n"


def hub_name(base: str | None) -> str | None:
    """The base model as the Hub names it: `minilm` is sentence-transformers/all-MiniLM-L6-v2; a
    local folder or `tiny` has no Hub name (None)."""
    if base == "minilm":
        return "sentence-transformers/all-MiniLM-L6-v2"
    if not base or base == "tiny" or base.startswith(("/", ".", "~")) or base.count("/") > 1:
        return None
    return base


def _training(info: dict) -> list[str]:
    schedule = info.get("schedule", {})
    stages = [f"{name.split('_')[0]} {count}" for name, count in schedule.items() if count]
    lora = info.get("lora")
    return [
        f"Base model `{info.get('base_model')}` ({info.get('head', 'scalar')} head), domain `{info['domain']}`, "
        f"input: {info.get('input', {}).get('input', 'see unirank.json')}.",
        "",
        f"Schedule: Bradley-Terry pairwise training, a Thurstone fit of the comparisons into targets, pointwise "
        f"training against them (epochs: {', '.join(stages)})"
        + (f"; LoRA r = {lora['r']} merged into the weights" if lora else "")
        + ". Everything unirank recorded is in `unirank.json`.",
        "",
    ]


def _calibration(info: dict) -> list[str]:
    calibration = info.get("calibration", {})
    final = calibration.get("final_fit") or {}
    lines = [
        "## Calibration",
        "",
        f"How the probability reads: {calibration.get('probability', 'sigmoid(logit)')}.",
        "",
    ]
    if final.get("applied", bool(final)) and not ("before" in final and "after" in final):
        lines.append(f"σ({final.get('a', 1.0):.4g}·r + {final.get('b', 0.0):.4g}) is folded into the head.")
    elif final.get("applied", bool(final)):
        before, after = final["before"], final["after"]
        low, high = after.get("ece_interval", [float("nan")] * 2)
        lines += [
            "| validation | ECE | Brier |",
            "|---|---|---|",
            f"| as trained | {before['ece']:.4f} | {before['brier']:.4f} |",
            f"| after the final calibration (folded into the head) | {after['ece']:.4f} [{low:.4f}, {high:.4f}] | "
            f"{after['brier']:.4f} |",
            "",
            f"Fitted on the {final.get('fitted_on', 'validation split')}, {after.get('groups', '?')} groups; the "
            "interval resamples groups.",
        ]
        held_out = final.get("held_out")
        if held_out:
            lines.append(
                f"On groups the fit did not see ({held_out['folds']} folds): ECE {held_out['before']['ece']:.4f} "
                f"as trained, {held_out['after']['ece']:.4f} after."
            )
    elif final:
        lines.append(f"The final calibration was not applied: {final.get('reason')}.")
    reliability = final.get("reliability")
    if reliability:
        lines += ["", "![reliability on the validation split](reliability.png)", "",
                  "| decisions P ≥ t (validation) | decisions | precision | recall |", "|---|---|---|---|"]  # fmt: skip
        for row in reliability["thresholds"]:
            precision = "–" if row["precision"] is None else f"{row['precision']:.3f}"
            recall = "–" if row["recall"] is None else f"{row['recall']:.3f}"
            lines.append(f"| t = {row['threshold']} | {row['decisions']} | {precision} | {recall} |")
    recalibration = calibration.get("recalibration")
    if recalibration:
        lines.append(
            f"Recalibrated for another domain on {recalibration['fitted_on']}: held-out ECE "
            f"{recalibration['before']['ece']:.4f} → {recalibration['after']['ece']:.4f}."
        )
    return lines + [""]


def _validation(info: dict) -> list[str]:
    validation = info.get("validation") or {}
    if not validation:
        return []
    rows = [f"| {name} | {value:.4f} |" for name, value in sorted(validation.items())]
    return ["## Validation (before the final calibration)", "", "| metric | value |", "|---|---|", *rows, ""]


def _usage(info: dict, folder_name: str) -> list[str]:
    return [
        "## Use",
        "",
        "```python",
        "from sentence_transformers import CrossEncoder",
        "",
        f'model = CrossEncoder("{folder_name}")',
        'model.predict([("the query or prompt", "the document or response")])  # calibrated probabilities',
        "```",
        "",
        "```python",
        "from unirank.model import Model",
        "",
        f'model = Model.from_pretrained("{folder_name}")',
        'model.score([("the query or prompt", "the document or response")])  # with standard errors, novelty',
        "```",
        "",
        f"`unirank score --model {folder_name} --input rows.jsonl --out scored.jsonl` does the same from the shell. "
        f"To publish: `huggingface-cli upload <your-name>/<repo> {folder_name}`.",
    ]


def reliability_figure(record: dict | None):
    """The validation split's reliability diagram (mean probability against observed frequency per
    bin, the diagonal for reference) as a matplotlib figure; None where there is no record."""
    if not record or not record.get("bins"):  # the bins: rows of metrics.calibration.reliability_table
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = record["bins"]
    figure, axes = plt.subplots(figsize=(4, 4))
    axes.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--")
    axes.plot([b["mean_prob"] for b in bins], [b["mean_label"] for b in bins], marker="o")
    axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="probability", ylabel="observed frequency",
             title="validation split, after the final calibration")  # fmt: skip
    figure.tight_layout()
    return figure


def reliability_plot(info: dict, path: Path) -> bool:
    """`reliability_figure` of a model's record written as a PNG at `path`; False where it has none."""
    figure = reliability_figure(((info.get("calibration") or {}).get("final_fit") or {}).get("reliability"))
    if figure is None:
        return False
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
