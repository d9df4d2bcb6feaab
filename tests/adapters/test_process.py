"""Process rewards: one forward per solution, step positions, truncation, aggregation, a tiny fit."""

import json

import lightning as L
import numpy as np
import pytest
import torch

from unirank.adapters import ProcessAdapter
from unirank.adapters.base import Batch, pad_chunks
from unirank.data.datamodule import UnirankDataModule
from unirank.domains.process.adapter import aggregate_steps
from unirank.domains.process.source import StepSolutions
from unirank.model import load_backbone
from unirank.module import Schedule, UnirankModule

STEPS = ["Let x be the number of apples.", "Then 3x + 2 = 11, so 3x = 9.", "Hence x = 3.", "The answer is 3."]


def normalise(text):
    return "".join(text.lower().split())


@pytest.mark.parametrize("backbone", ["tiny", "decoder"])
def test_step_positions_line_up_with_step_texts(backbone, tiny_decoder):
    _, tokenizer = load_backbone("tiny" if backbone == "tiny" else tiny_decoder)
    [encoded] = ProcessAdapter(max_length=256).encode(tokenizer, ["How many apples?"], [""], steps=[STEPS])
    assert len(encoded.step_ends) == len(STEPS) and encoded.cut_steps == ()
    starts = [None, *encoded.step_ends[:-1]]
    separator = 1 if backbone == "tiny" else len(tokenizer("\n\n", add_special_tokens=False)["input_ids"])
    previous_end = encoded.step_ends[0] - len(tokenizer(STEPS[0], add_special_tokens=False)["input_ids"])
    for step, end, start in zip(STEPS, encoded.step_ends, starts):
        first = previous_end + 1 if start is None else start + 1 + separator
        piece = tokenizer.decode(encoded.input_ids[first : end + 1])
        assert normalise(piece) == normalise(step), (piece, step)
        previous_end = end


def test_truncation_keeps_whole_steps_and_reports_the_cut():
    _, tokenizer = load_backbone("tiny")
    long_problem = "apples " * 200
    steps = [f"step number {i} " * 6 for i in range(12)]
    [encoded] = ProcessAdapter(max_length=96, problem_max_length=16).encode(tokenizer, [long_problem], [""], [steps])
    kept = len(encoded.step_ends)
    assert 0 < kept < 12 and encoded.cut_steps == tuple(range(kept, 12)) and len(encoded.input_ids) <= 96
    assert tokenizer.decode(encoded.input_ids[1:17]).split() == ["apples"] * 16  # the problem's start


def test_aggregations():
    steps = torch.tensor([1.0, -2.0, 0.5, 3.0, 2.0])
    owner = torch.tensor([0, 0, 0, 1, 1])
    assert aggregate_steps(steps, owner, 2, "min").tolist() == [-2.0, 2.0]
    assert aggregate_steps(steps, owner, 2, "last").tolist() == [0.5, 2.0]
    assert aggregate_steps(steps, owner, 2, "mean").tolist() == pytest.approx([-1 / 6, 2.5])
    product = torch.sigmoid(aggregate_steps(steps, owner, 2, "product"))
    expected = [torch.sigmoid(steps[:3]).prod().item(), torch.sigmoid(steps[3:]).prod().item()]
    assert product.tolist() == pytest.approx(expected, rel=1e-5)


def test_one_forward_per_solution_scores_every_step(tiny_decoder):
    module = UnirankModule(model="tiny", adapter=ProcessAdapter(max_length=128), chunk_size=4)
    solutions = [STEPS, STEPS[:2], STEPS[1:]]
    encoded = module.adapter.encode(module.tokenizer, ["How many apples?"] * 3, [""] * 3, steps=solutions)
    chunks, order = pad_chunks(encoded, module.tokenizer.pad_token_id, 4)
    module.eval()
    module.scorer.sequences_encoded = 0
    out = module.scorer.score_batch(Batch(chunks, order))
    assert module.scorer.sequences_encoded == 3  # not one forward per prefix
    assert out.steps.shape == (sum(len(s) for s in solutions),)
    assert out.step_index[out.step_owner == 0].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(
        out.items.detach().numpy(), [out.steps[out.step_owner == i].min().item() for i in range(3)], atol=1e-6
    )


def test_a_tiny_process_fit_trains_both_stages(shared_data, tmp_path):
    lines = (shared_data / "prmbench/target_data.jsonl").read_text().splitlines()[:24]
    (tmp_path / "prm.jsonl").write_text("\n".join(lines) + "\n")
    module = UnirankModule(
        model="tiny",
        adapter=ProcessAdapter(max_length=192, problem_max_length=48),
        schedule=Schedule(1, 1),
        lr=1e-3,
        head_lr=1e-3,
    )
    data = UnirankDataModule(StepSolutions(str(tmp_path / "prm.jsonl"), 0.2, 0.0), batch_groups=4)
    L.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    ).fit(module, datamodule=data)
    step_targets = module.targets.filter(module.targets["item_id"].str.contains("#step"))
    assert step_targets.height > 0
    wrong = step_targets.filter(step_targets["target"] < 0.5).height
    assert 0 < wrong < step_targets.height  # wrong steps lose to the anchor, correct ones beat it
    assert json.dumps(module.config()["adapter"]) == json.dumps(
        {
            "class": "ProcessAdapter",
            "domain": "process",
            "init_args": {"max_length": 192, "problem_max_length": 48, "aggregation": "min"},
        }
    )
    # the head posterior is fitted on the labelled steps; the conservative bound never exceeds σ(r)
    from unirank.domains.process.pruning import prefix_probabilities

    steps = data.datasets["train"].parent >= 0
    fitted_on = f"of {int(steps.sum())} labels"  # the steps' labels; no solution's (its score is an aggregate)
    assert module.scorer.head_posterior is not None and fitted_on in module.scorer.head_posterior.info["fitted_on"]
    low, high = module.scorer.final_calibration["after"]["ece_interval"]  # resampling the validation problems
    assert 0 <= low <= high and module.scorer.final_calibration["after"]["groups"] > 0
    items = data.tables.items.head(3)
    problems = data.tables.item_contexts()[:3]
    plain = prefix_probabilities(module.scorer, problems, items["steps"].to_list())
    lower = prefix_probabilities(module.scorer, problems, items["steps"].to_list(), conservative=True)
    for p, q in zip(plain, lower):
        scored = ~np.isnan(p)
        assert np.all(q[scored] < p[scored])
    # the novelty reference is fitted too, and evaluation reads it: its own training solutions are familiar
    from unirank.domains.process.evaluation import evaluate_process
    from unirank.model import Model

    train = data.tables.split("train")
    shift = evaluate_process({"m": Model(module.scorer)}, train)["systems"]["m"]["shift"]
    assert shift["inputs"] == train.items.height and shift["unfamiliar_share"] == 0.0


def test_process_metrics_on_hand_made_steps():
    from unirank.domains.process.evaluation import step_metrics

    probs = [np.array([0.9, 0.8, 0.3, 0.2]), np.array([0.9, 0.6]), np.array([0.4, 0.9])]
    labels = [[1.0, 1.0, 0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]
    report = step_metrics(probs, labels)
    # flagged wrong: steps with p < 0.5 → (0,2) ✓, (0,3) ✗, (2,0) ✗ ; true wrong: (0,2), (2,1)
    assert report["wrong_step_precision"] == pytest.approx(1 / 3) and report["wrong_step_recall"] == pytest.approx(0.5)
    assert report["wrong_step_f1"] == pytest.approx(0.4)
    assert report["first_error_accuracy"] == pytest.approx(0.5) and report["solutions_with_error"] == 2
    # the least probable step: solution 0's is step 3 (first error 2: a miss), solution 2's is step 0 (error 1: a miss)
    assert report["first_error_location_accuracy"] == 0.0
    lowered = step_metrics([probs[0], probs[1], np.array([0.9, 0.4])], labels)
    assert lowered["first_error_location_accuracy"] == pytest.approx(0.5)


def test_evaluate_command_for_process(shared_data, tmp_path):
    from unirank.cli import main
    from unirank.training.export import export_model

    lines = (shared_data / "prmbench/target_data.jsonl").read_text().splitlines()[:30]
    (tmp_path / "prm.jsonl").write_text("\n".join(lines) + "\n")
    export_model(
        UnirankModule(model="tiny", adapter=ProcessAdapter(max_length=160, aggregation="product")), tmp_path / "model"
    )
    main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "model"),
            "--steps",
            str(tmp_path / "prm.jsonl"),
            "--split",
            "all",
            "--out",
            str(tmp_path / "report"),
        ]
    )
    metrics = json.loads((tmp_path / "report/metrics.json").read_text())["systems"]["model"]
    assert metrics["aggregation"] == "product" and metrics["steps"] > 100
    assert {"wrong_step_f1", "first_error_accuracy", "solution_pair_accuracy", "step_ece"} <= metrics.keys()
    assert (tmp_path / "report/reliability.png").exists()


def test_pruning_stops_at_the_first_low_probability_step():
    from unirank.domains.process.pruning import prune_steps

    module = UnirankModule(model="tiny", adapter=ProcessAdapter(max_length=256))
    with torch.no_grad():
        module.scorer.model.classifier.bias.fill_(5.0)  # every step looks right ...
    full = prune_steps(module.scorer, "How many apples?", STEPS)
    assert full.rejected_step is None and full.kept == STEPS and full.steps_not_generated == 0
    with torch.no_grad():
        module.scorer.model.classifier.bias.fill_(-5.0)  # ... or wrong: stop after the first step
    generated = iter(STEPS)
    pruned = prune_steps(module.scorer, "How many apples?", generated, total_steps=len(STEPS))
    assert pruned.rejected_step == 0 and pruned.kept == [] and pruned.steps_not_generated == 3
    assert next(generated) == STEPS[1]  # the generator was not drained


def test_batched_prefix_scores_are_the_scores_a_streaming_chain_sees():
    from unirank.domains.process.pruning import prefix_probabilities, prune_steps

    module = UnirankModule(model="tiny", adapter=ProcessAdapter(max_length=256))
    module.scorer.eval()
    streamed = prune_steps(module.scorer, "How many apples?", STEPS, threshold=0.0).probabilities
    [batched] = prefix_probabilities(module.scorer, ["How many apples?"], [STEPS])
    np.testing.assert_allclose(batched, streamed, atol=1e-5)


def test_pruning_report_and_the_threshold_chosen_to_keep_correct_chains():
    from unirank.domains.process.pruning import choose_threshold, prune_at, pruning_report

    probabilities = [np.array([0.9, 0.8, 0.7]), np.array([0.9, 0.2, 0.6]), np.array([0.95, 0.85, 0.3])]
    labels = [[1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]
    tokens = [[10, 10, 10], [10, 20, 30], [5, 5, 5]]
    assert prune_at(probabilities[1], 0.5) == 1 and prune_at(probabilities[0], 0.5) is None
    report = pruning_report(probabilities, labels, tokens, 0.5)
    assert report["correct_steps_kept"] == 1.0 and report["wrong_solutions"] == 2
    assert report["wrong_stopped_before_end"] == 0.5  # the second stops at step 2 of 3; the third at its last
    assert report["stopped_at_or_after_first_error"] == 1.0
    assert report["tokens_saved"] == 30 and report["tokens_saved_share"] == pytest.approx(30 / 105)
    # keeping every correct step allows any threshold up to 0.70 (the correct chain's lowest step)
    assert choose_threshold(probabilities, labels, keep=1.0) == pytest.approx(0.70)


def test_the_chosen_threshold_keeps_its_promise_over_resampled_problems():
    from unirank.domains.process.pruning import choose_threshold

    # ten correct 3-step solutions, one problem each; one starts with a doubtful step (0.5)
    probabilities = [np.array([0.5, 0.9, 0.9])] + [np.array([0.9, 0.9, 0.9])] * 9
    labels = [[1.0, 1.0, 1.0]] * 10
    # on the sample, stopping that one chain at once still keeps 27 of 30 steps: t up to 0.90 passes
    assert choose_threshold(probabilities, labels, keep=0.9) == pytest.approx(0.90)
    # but a resample drawing that problem twice or more (26 % of them) keeps less than 90 %, so the
    # promise held in 90 % of resamples allows only thresholds that never stop it
    assert choose_threshold(probabilities, labels, keep=0.9, groups=list(range(10)), confidence=0.9) == 0.50
    assert choose_threshold(probabilities, labels, keep=0.9, groups=list(range(10)), confidence=0.0) == 0.90


def test_prune_command_chooses_its_threshold_on_validation(shared_data, tmp_path):
    from unirank.cli import main
    from unirank.training.export import export_model

    lines = (shared_data / "prmbench/target_data.jsonl").read_text().splitlines()[:40]
    (tmp_path / "prm.jsonl").write_text("\n".join(lines) + "\n")
    export_model(UnirankModule(model="tiny", adapter=ProcessAdapter(max_length=160)), tmp_path / "model")
    args = ["prune", "--model", str(tmp_path / "model"), "--steps", str(tmp_path / "prm.jsonl")]
    main([*args, "--validation-fraction", "0.3", "--test-fraction", "0.3", "--out", str(tmp_path / "p.json")])
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["threshold_chosen_on"].startswith("validation") and 0.0 <= report["threshold"] < 1.0
    assert report["solutions"] == len(report["solutions_stopped"]) > 0
    main([*args, "--split", "all", "--threshold", "0.99", "--out", str(tmp_path / "q.json")])
    everything = json.loads((tmp_path / "q.json").read_text())
    assert everything["threshold"] == 0.99 and everything["tokens_saved"] > 0
    with pytest.raises(SystemExit, match="--conservative needs a head posterior"):
        main([*args, "--conservative", "--out", str(tmp_path / "r.json")])
