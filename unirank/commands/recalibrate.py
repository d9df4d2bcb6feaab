"""`unirank recalibrate`: a model moved to another domain, its calibration refitted on that domain's labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def recalibrate(
    model: Path,
    labels: Path,
    out: Path,
    folds: int = 5,
    seed: int = 0,
    split: str = "test",
    depth: int = 50,
    force: bool = False,
    trust_remote_code: bool = False,
) -> None:
    """Refit the model's σ(a·r + b) on a new domain's labels, write it as a new export, and report
    the ECE before and after on labels the fit did not see (k-fold over groups, 95 % intervals).
    The new export's novelty percentiles are read against the labelled inputs, so inputs of the
    domain it was recalibrated on no longer read as shifted (unirank.metrics.shift). As the final
    calibration does, it writes nothing where the refit raises the held-out ECE (unless --force),
    and refuses labels all of one class (a fit to them says "always" or "never").

    Args:
        model: an exported folder (it is not changed)
        labels: JSONL of {"context", "candidate", "label"} rows (label 0/1, or "p" in [0, 1]; an
            optional "group", else the context groups the rows); TRL preference JSONL ({"prompt",
            "chosen", "rejected"}: a temperature is fitted); or a folder of unirank tables (`unirank
            mine` output: the first stage's labelled candidates, the lists a reranker scores; with
            their first-stage scores, γ of the fused ranking is refitted too, and its held-out NDCG
            reported); or a BEIR or SMART folder (its judged queries' top `depth` by the bi-encoder,
            labelled by the qrels of `split`: the lists the reranker will score there)
        out: a new folder for the recalibrated export
        folds: folds of the cross-validation over groups that measures the held-out ECE
        seed: how groups are dealt into folds
        split: the qrels split of a BEIR folder given as labels
        depth: how many first-stage candidates per query of a BEIR folder are scored
        force: write the refit even where it raises the held-out ECE (said in the output)
        trust_remote_code: let a model whose backbone has its own code run it
    """
    from unirank.atomic import OutputError
    from unirank.data.tables import TableError
    from unirank.metrics.cross_fit import Evidence, recalibrate_scores
    from unirank.model import Model
    from unirank.model.folder import check_save_target
    from unirank.recalibration import write_recalibrated

    try:
        check_save_target(Path(out), Path(model), overwrite=False)
        if not (Path(model) / "unirank.json").exists():
            raise OutputError(f"{model}: not a unirank export folder (no unirank.json)")
    except OutputError as error:
        raise SystemExit(f"unirank recalibrate: {error}") from None
    try:
        evidence, source = _recalibration_evidence(labels, split, depth)
    except (TableError, ValueError) as error:
        raise SystemExit(f"unirank recalibrate: {error}") from None
    label = evidence.get("label")
    if label is not None and "comp_a" not in evidence and len(np.unique(label[~np.isnan(label)])) < 2:
        raise SystemExit(
            f"unirank recalibrate: {labels}: every label is {label[~np.isnan(label)][0]:g}; a refit to labels of one "
            "class says the same probability for everything. Give labels of both classes"
        )
    predictor = Model.from_pretrained(model, trust_remote_code=trust_remote_code)
    fitted_depth = (predictor.scorer.final_calibration or {}).get("list_depth")
    if source.startswith("the bi-encoder's top") and fitted_depth and depth < fitted_depth:
        print(
            f"unirank recalibrate: --depth {depth} labels the top {depth} of each list, and this model's probabilities "
            f"were fitted on lists of {fitted_depth}: the refit would carry the top-{depth} base rate to the whole list; "
            f"label across the depth it scores (--depth {fitted_depth}, with fewer queries if labels are scarce)"
        )
    if predictor.scorer.adapter.reads_steps:
        raise SystemExit(
            "unirank recalibrate: this command needs a reranker or reward model (a process model's steps: not yet)"
        )
    contexts, texts, groups = evidence.pop("contexts"), evidence.pop("texts"), evidence.pop("groups")
    first_stage = evidence.pop("first_stage", None)
    scores, _, states = predictor.score_texts_with_features(contexts, texts, states=True)
    fit = Evidence(scores=scores, groups=np.asarray(groups), **evidence)
    with_bias = predictor.scorer.has_output_bias() and predictor.info.get("head") != "yes-no"
    try:
        record = recalibrate_scores(fit, predictor.pairwise_link, with_bias, folds, seed)
    except ValueError as error:
        raise SystemExit(f"unirank recalibrate: {error}") from None
    record["fitted_on"] = f"{labels}: {record['n']} {record['evidence']} in {record['groups']} groups"
    worse = record["after"]["ece"] > record["before"]["ece"]
    at_bound = slope_bound(record["a"])
    if at_bound:
        record["slope_at_bound"] = at_bound
        record["no_signal"] = "floor" in at_bound  # the conservative decisions abstain (Model.score)
    if worse and not force:
        raise SystemExit(
            f"unirank recalibrate: the refit σ({record['a']:.4g}·r + {record['b']:.4g}) would raise the held-out ECE "
            f"from {record['before']['ece']:.4f} to {record['after']['ece']:.4f} ({record['folds']} folds over "
            f"{record['groups']} groups){'; ' + at_bound if at_bound else ''}: nothing written ({model} stays as it is; "
            "--force writes it anyway)"
        )
    if first_stage is not None:  # ranked lists with their first-stage scores: γ of the fused ranking too
        from unirank.metrics.fusion import cross_fitted_fusion

        calibrated = record["a"] * scores + record["b"]
        fusion = cross_fitted_fusion(
            calibrated, first_stage, fit.label, fit.groups, folds, seed, current=predictor.fusion_weight or 0.0
        )
        versus = fusion["versus_current"]
        if versus["interval"][0] > 0:  # better out of fold than the γ the model has, beyond its interval
            record["fusion"] = fusion
        else:
            record["fusion_not_refitted"] = fusion | {
                "reason": f"the refit γ = {fusion['first_stage_weight']:.4g} changes the held-out NDCG@10 by "
                f"{versus['difference']:+.4f} [{versus['interval'][0]:+.4f}, {versus['interval'][1]:+.4f}] over "
                f"{versus['n_groups']} queries against γ = {versus['current_weight']:.4g}: kept as it was"
            }
    reference = predictor.scorer.novelty
    if reference is not None:  # the new domain is now the one its probabilities were fitted on
        from unirank.model.novelty import NoveltyReference

        predictor.scorer.novelty = NoveltyReference(reference.states, np.sort(reference.novelty(states)))
        record["novelty_reanchored_on"] = len(texts)
    write_recalibrated(predictor, Path(out), record)
    before, after = record["before"], record["after"]
    print(f"recalibrated σ({record['a']:.4f}·r + {record['b']:.4f}) on {record['fitted_on']} ({source})")
    for name, row in (("before", before), ("after", after)):
        low, high = row["ece_interval"]
        print(f"  held-out ECE {name:6s} {row['ece']:.4f} [{low:.4f}, {high:.4f}] over {row['n']}")
    if "fusion" in record:
        fusion, held = record["fusion"], record["fusion"]["held_out"]
        print(
            f"  fused ranking r + γ·first stage: γ = {fusion['first_stage_weight']:.4g}; held-out NDCG@10 over "
            f"{fusion['queries']} queries: first stage {held['first stage']:.4f}, reranker {held['reranker']:.4f}, "
            f"fused {held['fused']:.4f}"
        )
    if "fusion_not_refitted" in record:
        print(f"  fused ranking: {record['fusion_not_refitted']['reason']}")
    if at_bound:
        print(f"  note: {at_bound}")
    if worse:
        print(f"  --force: written although the held-out ECE rose ({before['ece']:.4f} → {after['ece']:.4f})")
    print(f"wrote the recalibrated model to {out}  ({model} unchanged)")


def slope_bound(a: float) -> str | None:
    """A sentence where the refit's slope stopped at a bound of its search (`fitting.platt`): at the
    floor the model's scores carry no signal on these labels (every probability is the base rate);
    at the ceiling they are stretched as far as the fit may."""
    from unirank.fitting.platt import SLOPE_BOUNDS

    low, high = SLOPE_BOUNDS
    if a <= low * 1.01:
        return f"the slope stopped at its floor (a = {a:.4g}): the scores carry no signal on these labels"
    if a >= high * 0.99:
        return f"the slope stopped at its ceiling (a = {a:.4g}): the fit is not determined by these labels"
    return None


def _recalibration_evidence(path: Path, split: str = "test", depth: int = 50) -> tuple[dict, str]:
    """Items to score and what they are fitted on, from a labels file, a tables folder, or a BEIR /
    SMART folder (mined to its top `depth` for the judged queries of `split`)."""
    from unirank.data.readers import iter_jsonl
    from unirank.data.sources import TablesDir
    from unirank.data.tables import TableError
    from unirank.domains.chat.source import Preferences
    from unirank.domains.retrieval.readers import smart_files

    path = Path(path)
    if path.is_dir() and ((path / "corpus.jsonl").exists() or smart_files(path) is not None):
        from dataclasses import replace

        from unirank.mining.pipeline import MiningConfig, mine_beir

        tables, _ = mine_beir(path, split, replace(MiningConfig(k=depth), keep_ranking=True))
        source = f"the bi-encoder's top {depth} for the judged queries of {split}"
    elif path.is_dir():
        tables, source = TablesDir(str(path)).load(), "tables"
    else:
        first = next(iter_jsonl(path), (0, {}))[1]
        if {"prompt", "chosen", "rejected"} <= set(first):
            tables, source = Preferences(str(path), "trl", validation_fraction=0.0).load(), "preference pairs"
        else:
            return _labelled_rows(path), "labelled rows"
    items = tables.items
    label = items["label"].cast(float).fill_null(float("nan")).to_numpy()
    comparisons = tables.indexed_comparisons()
    if np.isnan(label).all() and not comparisons.height:
        raise TableError(f"{path}: no labelled items and no comparisons to recalibrate on")
    evidence = {
        "contexts": tables.item_contexts(),
        "texts": items["text"].to_list(),
        "groups": items["group_id"].to_list(),
    }
    if not np.isnan(label).all():
        ranked = "first_stage_score" in items.columns and items["first_stage_score"].null_count() == 0
        first_stage = {"first_stage": items["first_stage_score"].to_numpy()} if ranked else {}
        return evidence | {"label": label} | first_stage, source
    return evidence | {
        "comp_a": comparisons["_a"].to_numpy(), "comp_b": comparisons["_b"].to_numpy(),
        "p": comparisons["p"].to_numpy(), "weight": comparisons["weight"].to_numpy(),
    }, source  # fmt: skip


def _labelled_rows(path: Path) -> dict:
    """{context, candidate, label | p[, group]} rows; a bad row is named by its line."""
    from unirank.data.readers import iter_jsonl
    from unirank.data.tables import TableError
    from unirank.data.values import check_number, check_scoring_row, warn_blank_candidates

    contexts, texts, labels, groups, blank = [], [], [], [], 0
    for line, record in iter_jsonl(path):
        where = f"{path}, line {line}"
        blank += check_scoring_row(record, where)
        context, candidate = record["context"], record["candidate"]
        field = "label" if "label" in record else "p"
        value = check_number(record.get(field), where, field, 0.0, 1.0)
        context = context if isinstance(context, str) else json.dumps(context, ensure_ascii=False)
        contexts.append(context)
        texts.append(candidate)
        labels.append(float(value))
        groups.append(str(record.get("group", context)))
    if not labels:
        raise TableError(f"{path}: no labelled rows")
    warn_blank_candidates(blank, str(path))
    return {"contexts": contexts, "texts": texts, "groups": groups, "label": np.asarray(labels)}
