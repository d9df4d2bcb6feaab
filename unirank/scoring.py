"""Score (context, candidate) pairs with an exported folder or a checkpoint, formatted by the
model's own adapter (so a reward model's chat rendering and truncation match training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unirank.novelty import load_reference
from unirank.scorer import Scorer, load_backbone
from unirank.uncertainty import item_uncertainty, load_posterior


class Predictor:
    """predict([(context, candidate), ...]) → [(logit r, probability σ(r)), ...] with a `Scorer`.

    pairwise_link: how two of its logits read as P(a ≻ b) (the scorer's `pairwise_reading`:
    "thurstone" for a model trained through the pointwise stage on Thurstone targets,
    "bradley-terry" otherwise; see evaluation.pairwise_probability).
    bf16: score under bfloat16 autocast (faster where the hardware has bf16; logits within ~1e-2 of fp32).
    """

    def __init__(self, scorer: Scorer, bf16: bool = False):
        self.scorer, self.bf16 = scorer, bf16
        fusion = (scorer.final_calibration or {}).get("fusion") or {}
        self.fusion_weight: float | None = fusion.get("first_stage_weight")
        """γ of `rank by r + γ·first-stage score`, fitted on validation lists (None: not fitted)."""
        self.pairwise_link = scorer.pairwise_reading

    @property
    def posterior(self):
        """The head posterior (`unirank.fitting.laplace.HeadPosterior`), or None where the model has none."""
        return self.scorer.head_posterior

    @property
    def novelty(self):
        """The novelty reference (`unirank.novelty.NoveltyReference`), or None where the model has none."""
        return self.scorer.novelty

    def predict(self, pairs: list[tuple[str | list, str]]) -> list[tuple[float, float]]:
        logits = self.score_texts(*_columns(pairs))
        return [(float(r), float(1 / (1 + np.exp(-r)))) for r in logits]

    def score_texts(self, contexts: list[str], candidates: list[str]) -> np.ndarray:
        """The logit r of each (context, candidate), formatted by the model's adapter."""
        return self.scorer.score_texts(contexts, candidates, self.bf16)

    def score_texts_with_features(self, contexts: list[str], candidates: list[str], states: bool = False) -> tuple:
        """(logits, the final layer's input of each pair): what the head posterior reads; states:
        also each input's pooled final state, what novelty reads (the same forward pass)."""
        encoded = self.scorer.encode(contexts, candidates)
        if not encoded:
            return (np.zeros(0), np.zeros((0, 0))) + ((np.zeros((0, 0)),) if states else ())
        return self.scorer.score_encoded_with_features(encoded, self.bf16, states=states)

    def predict_with_uncertainty(self, pairs: list[tuple[str | list, str]]) -> list[dict]:
        """predict() with, where the model has a head posterior, the logit's and the probability's
        standard errors and a conservative probability (the one-sided 95 % lower bound), and where
        it has a novelty reference, how unlike its training inputs each input is: `novelty` and
        `novelty_percentile` (`unirank.novelty`), from the same forward pass."""
        reference = self.scorer.novelty
        if self.posterior is None and reference is None:
            return [{"score": r, "probability": p} for r, p in self.predict(pairs)]
        if not pairs:
            return []
        logits, features, states = self.score_texts_with_features(*_columns(pairs), states=True)
        extra = {} if self.posterior is None else item_uncertainty(self.posterior, logits, features)
        if reference is not None:
            novelty = reference.novelty(states)
            extra |= {"novelty": novelty, "novelty_percentile": reference.percentile(novelty)}
        rows = [{"score": float(r), "probability": float(1 / (1 + np.exp(-r)))} for r in logits]
        return [{**row, **{k: float(v[i]) for k, v in extra.items()}} for i, row in enumerate(rows)]

    def fuse(self, logits, first_stage_scores) -> np.ndarray:
        """The ranking score r + γ·s fused with the first stage's scores s (γ fitted on validation
        lists at training, recorded in unirank.json). Only the order of the fused scores within a
        query means something; the calibrated probability stays σ(r)."""
        if self.fusion_weight is None:
            raise ValueError(
                "this model records no first-stage fusion weight (retrieval models trained on mined lists do)"
            )
        return np.asarray(logits, dtype=np.float64) + self.fusion_weight * np.asarray(first_stage_scores, np.float64)


def _columns(pairs: list[tuple[str | list, str]]) -> tuple[list[str], list[str]]:
    """(contexts, candidates); a context given as chat messages is kept as its JSON text."""
    contexts = [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c, _ in pairs]
    return contexts, [t for _, t in pairs]


def load(path: str | Path, trust_remote_code: bool = False) -> Scorer:
    """A `Scorer` from an export folder (with unirank.json) or a .ckpt checkpoint; a backbone with
    its own code loads only with trust_remote_code=True."""
    from unirank.export import adapter_from_spec, load_checkpoint

    path = Path(path)
    if not path.is_dir():
        module = load_checkpoint(path, trust_remote_code)
        if module.targets is None:  # stopped before the pointwise stage: read as it was trained
            module.scorer.pairwise_reading = "bradley-terry"
        return module.scorer
    if not (path / "unirank.json").exists():
        raise ValueError(f"{path}: not a unirank export (no unirank.json)")
    info = json.loads((path / "unirank.json").read_text())
    model, tokenizer = load_backbone(str(path), trust_remote_code=trust_remote_code, head=info.get("head", "scalar"))
    scorer = Scorer(model, tokenizer, adapter_from_spec(info["adapter"], path))
    scorer.final_calibration = info["calibration"].get("final_fit")
    scorer.pairwise_reading = info["calibration"].get("pairwise_reading", "bradley-terry")
    scorer.head_posterior = load_posterior(path, info.get("uncertainty"))
    scorer.novelty = load_reference(path) if info.get("novelty") else None
    return scorer.eval()


def load_scorer(path: str | Path, bf16: bool = False, trust_remote_code: bool = False) -> Predictor:
    """A Predictor from an export folder (with unirank.json) or a .ckpt checkpoint."""
    return Predictor(load(path, trust_remote_code), bf16)
