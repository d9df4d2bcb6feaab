"""`Model`: a trained reranker or reward model, as users load, query and save it.

    from unirank.model import Model
    model = Model.from_pretrained("runs/reranker/model")
    model.predict([("what causes tides?", "The Moon's gravity ...")])   # calibrated probabilities
    model.rank("what causes tides?", documents)                        # best first

Every text is formatted by the model's own adapter (so a reward model's chat rendering and
truncation match training). The probability is σ(r) of the calibrated logit r. Loading an export
imports no Lightning, no training and no evaluation code; a .ckpt checkpoint loads through
`unirank.training.export`.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from unirank.fitting.links import probability
from unirank.model.posterior import item_uncertainty

Pair = tuple[str | list, str]


class Model:
    """A `Scorer` with what training recorded about it (`info`, the unirank.json record).

    It reads as sentence-transformers' `CrossEncoder` does (`predict`, `rank`), and adds what
    training recorded: a standard error, a lower bound and novelty per score (`score`), steps
    (`score_steps`) and the fused first-stage ranking (`fuse`). For example:

        >>> model = Model.from_pretrained(folder, device="cpu")
        >>> model.domain
        'chat'

    bf16: score under bfloat16 autocast (faster where the hardware has bf16; logits within ~1e-2 of
    fp32). `pairwise_link`: how two of its logits read as P(a ≻ b) ("thurstone" for a model trained
    through the pointwise stage on Thurstone targets, else "bradley-terry"). `fusion_weight`: γ of
    the ranking r + γ·first-stage score, fitted on validation lists, or refitted by `unirank
    recalibrate` on the new domain's lists (None where not fitted).
    """

    def __init__(self, scorer, bf16: bool = False, info: dict | None = None, source: str | Path | None = None):
        self.scorer, self.bf16, self.info = scorer, bf16, info or {}
        self.source = source
        """Where the weights were loaded from: a yes/no head's other LM-head rows are read there on save."""
        recalibrated = (self.info.get("calibration") or {}).get("recalibration") or {}
        fusion = recalibrated.get("fusion") or (scorer.final_calibration or {}).get("fusion") or {}
        self.fusion_weight: float | None = fusion.get("first_stage_weight")
        self.pairwise_link = scorer.pairwise_reading
        self.carries_signal = not recalibrated.get("no_signal", False)
        """False where `unirank recalibrate` found the scores carry no signal on the domain it refit
        on (its slope at the floor): every probability is the base rate, and `score` withholds the
        conservative lower bound (None), so conservative decisions abstain."""

    @classmethod
    def from_pretrained(
        cls, path: str | Path, bf16: bool = False, trust_remote_code: bool = False, device: str | None = None
    ) -> Model:
        """An export folder (with unirank.json) or a .ckpt checkpoint, placed on `device` (None: a
        CUDA GPU where there is one, else the CPU); a backbone with its own code loads only with
        trust_remote_code=True."""
        from unirank.model.folder import load_folder
        from unirank.model.precision import default_device

        path, device = Path(path), device or default_device()
        if path.is_dir():
            scorer, info = load_folder(path, trust_remote_code)
            return cls(scorer, bf16, info, source=path).to(device)
        from unirank.training.export import load_checkpoint, record

        module = load_checkpoint(path, trust_remote_code)
        if module.targets is None:  # stopped before the pointwise stage: read as it was trained
            module.scorer.pairwise_reading = "bradley-terry"
        if module.calibration.final != "none" and module.scorer.final_calibration is None:
            import warnings

            warnings.warn(
                f"{path}: this checkpoint holds no final calibration (it is fitted when training ends, into the "
                "export): its probabilities are the model's as trained; score the export for calibrated ones",
                UserWarning,
                stacklevel=2,
            )
        return cls(module.scorer, bf16, record(module), source=module.model_name).to(device)

    def to(self, device) -> Model:
        """Move the weights to `device` ("cpu", "cuda", "cuda:1", a torch.device); inputs follow the
        weights and every reading comes back on the CPU. Returns the model."""
        self.scorer.to(device)
        return self

    @property
    def device(self):
        """Where the weights are (a torch.device)."""
        return self.scorer.device

    def save_pretrained(
        self, path: str | Path, overwrite: bool = False, extra: Callable[[Path], None] | None = None
    ) -> Path:
        """Write the model folder atomically (a killed write leaves the old folder or none): a
        folder that is not a unirank export is refused, never replaced; an existing export is
        replaced only with overwrite=True; never the folder the model was loaded from. extra:
        writes more files into the folder before it lands (training's LoRA adapter)."""
        from unirank.atomic import atomic_path
        from unirank.model.folder import check_save_target, write_folder

        path = Path(path)
        check_save_target(path, self.source, overwrite)
        base = str(self.source or self.info.get("base_model"))
        with atomic_path(path, directory=True) as tmp:
            if extra is not None:
                extra(tmp)
            write_folder(self.scorer, self.info, tmp, base, bool(self.info.get("trust_remote_code")), path.name)
        return path

    @property
    def domain(self) -> str:
        return self.scorer.adapter.domain

    def require(self, command: str, steps: bool = False) -> None:
        """Deprecated: command plumbing (`_require`); removed in the next release."""
        warnings.warn("Model.require is internal and will be removed; it is Model._require now", FutureWarning, 2)
        self._require(command, steps)

    def _require(self, command: str, steps: bool = False) -> None:
        """Refuse, in one sentence, a model of the wrong kind for `command`: one that scores steps
        where (context, candidate) pairs are scored (steps=False), or one that does not where steps
        are (steps=True)."""
        if steps and not self.scorer.adapter.reads_steps:
            raise ValueError(f"{command} needs a process model (one that scores steps); this is a {self.domain} model")
        if not steps and self.scorer.adapter.reads_steps:
            raise ValueError(f"{command} needs a reranker or reward model; this is a process model (it scores steps)")

    @property
    def posterior(self):
        """The head posterior (`unirank.fitting.laplace.HeadPosterior`), or None where the model has none."""
        return self.scorer.head_posterior

    @property
    def novelty(self):
        """The novelty reference (`unirank.model.novelty.NoveltyReference`), or None where the model has none."""
        return self.scorer.novelty

    def predict(
        self,
        pairs: list[Pair] | Pair,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        convert_to_numpy: bool = True,
    ):
        """P(relevant | context, candidate), calibrated, as `CrossEncoder.predict` returns it.

        Args:
            pairs: (context, candidate) pairs, or one pair (a chat context may be a list of messages).
            batch_size: sequences per forward pass.
            show_progress_bar: progress lines while scoring (None: for long lists where output is a log).
            convert_to_numpy: a NumPy array (else a torch tensor).

        Returns:
            One probability per pair (a float for one pair; empty for no pairs).

        >>> model.predict(("How do I boil an egg?", "Boil it for 9 minutes.")) < 1.0
        True
        >>> model.predict([("a", "b"), ("c", "d")]).shape, model.predict([]).shape
        ((2,), (0,))
        """
        single = _is_pair(pairs)
        pairs = [pairs] if single else list(pairs)
        probabilities = probability(self._logits(pairs, batch_size, show_progress_bar)) if pairs else np.zeros(0)
        if single:
            return float(probabilities[0])
        if convert_to_numpy:
            return probabilities
        import torch

        return torch.from_numpy(probabilities)

    def _logits(self, pairs: list[Pair], batch_size: int = 32, show_progress_bar: bool | None = None) -> np.ndarray:
        with self._scoring(batch_size, show_progress_bar):
            return self.score_texts(*_columns(pairs))

    @contextlib.contextmanager
    def _scoring(self, batch_size: int, show_progress_bar: bool | None):
        """Within the block the scorer runs `batch_size` sequences per pass and shows progress as asked."""
        scorer = self.scorer
        kept = scorer.chunk_size, scorer.progress
        scorer.chunk_size, scorer.progress = batch_size, show_progress_bar
        try:
            yield
        finally:
            scorer.chunk_size, scorer.progress = kept

    def score_texts(self, contexts: list[str], candidates: list[str]) -> np.ndarray:
        """The calibrated logit r of each (context, candidate)."""
        return self.scorer.score_texts(contexts, candidates, self.bf16)

    def score_texts_with_features(self, contexts: list[str], candidates: list[str], states: bool = False) -> tuple:
        """(logits, the final layer's input of each pair): what the head posterior reads; states:
        also each input's pooled final state, what novelty reads (the same forward pass)."""
        encoded = self.scorer.encode(contexts, candidates)
        if not encoded:
            return (np.zeros(0), np.zeros((0, 0))) + ((np.zeros((0, 0)),) if states else ())
        return self.scorer.score_encoded_with_features(encoded, self.bf16, states=states)

    def score(self, pairs: list[Pair]) -> list[dict]:
        """Per pair: `score` (r) and `probability`; where the model has a head posterior, the
        logit's standard error, the probability's 95 % interval mapped through σ, `probability_lower`
        (the one-sided 95 % lower bound) and the probability's standard error where the delta method
        holds (None elsewhere: `unirank.model.posterior.item_uncertainty`); where it has a novelty
        reference, `novelty` and `novelty_percentile` (how unlike its training inputs the input is),
        all from one forward pass."""
        if not pairs:
            return []
        reference = self.scorer.novelty
        if self.posterior is None and reference is None:
            logits = self.score_texts(*_columns(pairs))
            return [{"score": float(r), "probability": float(p)} for r, p in zip(logits, probability(logits))]
        logits, features, states = self.score_texts_with_features(*_columns(pairs), states=True)
        extra = {} if self.posterior is None else item_uncertainty(self.posterior, logits, features)
        if not self.carries_signal and "probability_lower" in extra:  # a bound that shrinks with the slope
            extra["probability_lower"] = np.full(len(logits), np.nan)
        if reference is not None:
            novelty = reference.novelty(states)
            extra |= {"novelty": novelty, "novelty_percentile": reference.percentile(novelty)}
        extra = {"score": logits, "probability": probability(logits), **extra}
        return [{k: _number(v[i]) for k, v in extra.items()} for i in range(len(logits))]

    def rank(
        self,
        query: str,
        documents: list[str],
        top_k: int | None = None,
        return_documents: bool = False,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        *,
        first_stage_scores: list[float] | None = None,
    ) -> list[dict]:
        """The documents best first, as `CrossEncoder.rank` gives them on the same folder.

        Args:
            query: the query or prompt.
            documents: the candidates.
            top_k: keep the first top_k (None: all).
            return_documents: add each document's text ("text").
            batch_size, show_progress_bar: as `predict`.
            first_stage_scores: each document's first-stage score; where the model records a fusion
                weight γ, the order is by the fused score r + γ·s ("fused_score").

        Returns:
            [{"corpus_id", "score" (the calibrated probability), "logit", ...}], best first.

        >>> ranked = model.rank("How do I boil an egg?", ["Eggs are food.", "Boil it for 9 minutes."], top_k=1)
        >>> len(ranked), sorted(ranked[0])
        (1, ['corpus_id', 'logit', 'score'])
        """
        if top_k is not None and not isinstance(top_k, int | np.integer):  # 0.2's rank(query, documents, scores, k)
            warnings.warn("rank(query, documents, first_stage_scores, top_k) is deprecated: pass "
                          "first_stage_scores= by name; top_k is the third argument", FutureWarning, 2)  # fmt: skip
            first_stage_scores, top_k = top_k, return_documents if not isinstance(return_documents, bool) else None
            return_documents = False
        documents = list(documents)
        logits = self._logits([(query, d) for d in documents], batch_size, show_progress_bar) if documents else []
        rows = [{"corpus_id": i, "score": float(p), "logit": float(r)}
                for i, (r, p) in enumerate(zip(logits, probability(np.asarray(logits, dtype=np.float64))))]  # fmt: skip
        key = "score"
        if first_stage_scores is not None and self.fusion_weight is not None and documents:
            for row, fused in zip(rows, self.fuse(logits, first_stage_scores)):
                row["fused_score"] = float(fused)
            key = "fused_score"
        if return_documents:
            for row in rows:
                row["text"] = documents[row["corpus_id"]]
        return sorted(rows, key=lambda row: -row[key])[:top_k]

    def score_steps(self, problems: list[str], solutions: list[list[str]]) -> list[dict]:
        """A process model's reading of each solution (a list of steps): its `probability` (the
        adapter's aggregate of its steps') and each step's `step_probabilities`."""
        self._require("score_steps", steps=True)
        encoded = self.scorer.encode(list(problems), [""] * len(problems), steps=[list(s) for s in solutions])
        totals, steps = self.scorer.score_encoded_steps(encoded, self.bf16)
        return [{"score": float(r), "probability": float(probability(r)), "step_probabilities": probability(s).tolist()}
                for r, s in zip(totals, steps)]  # fmt: skip

    def fuse(self, logits, first_stage_scores) -> np.ndarray:
        """The ranking score r + γ·s fused with the first stage's scores s (γ recorded in
        unirank.json). Only the order within a query means something; the probability stays σ(r)."""
        if self.fusion_weight is None:
            raise ValueError(
                "this model records no first-stage fusion weight (retrieval models trained on mined lists do)"
            )
        return np.asarray(logits, dtype=np.float64) + self.fusion_weight * np.asarray(first_stage_scores, np.float64)


def _is_pair(pairs) -> bool:
    """Whether `pairs` is one (context, candidate) pair rather than a list of them."""
    if not (isinstance(pairs, tuple | list) and len(pairs) == 2 and isinstance(pairs[1], str)):
        return False
    context = pairs[0]
    return isinstance(context, str) or (isinstance(context, list) and all(isinstance(m, dict) for m in context))


def _columns(pairs: list[Pair]) -> tuple[list[str], list[str]]:
    """(contexts, candidates); a context given as chat messages is kept as its JSON text."""
    contexts = [c if isinstance(c, str) else json.dumps(c, ensure_ascii=False) for c, _ in pairs]
    return contexts, [t for _, t in pairs]


def _number(value) -> float | None:
    """A float for JSON output; NaN (a figure that does not apply) as None."""
    value = float(value)
    return None if np.isnan(value) else value
