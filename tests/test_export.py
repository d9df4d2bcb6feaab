"""Export: the folder loads in transformers and sentence-transformers and scores like the checkpoint."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from unirank.adapters import RetrievalAdapter
from unirank.cli import main
from unirank.data.datamodule import UnirankDataModule
from unirank.data.sources import TablesDir
from unirank.data.tables import Tables
from unirank.module import Schedule, UnirankModule
from unirank.training.export import export_checkpoint, load_checkpoint

PAIRS = [
    ("why is the sky blue", "Air scatters blue light more than red."),
    ("why is the sky blue", "Cheese is made from milk."),
    ("what makes bread rise", "Yeast releases carbon dioxide in the dough."),
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import polars as pl

    folder = tmp_path_factory.mktemp("export")
    items = pl.DataFrame(
        {
            "group_id": ["q"] * 3 + ["r"] * 2,
            "item_id": ["a", "b", "c", "d", "e"],
            "text": [t for _, t in PAIRS] + ["Bees dance.", "Moons orbit."],
            "label": [1.0, 0.0, 0.0, 1.0, 0.0],
        }
    )
    Tables(
        groups=pl.DataFrame(
            {
                "group_id": ["q", "r"],
                "context": ["why is the sky blue", "how do bees talk"],
                "split": ["train", "train"],
            }
        ),
        items=items,
        comparisons=pl.DataFrame({"group_id": ["q", "q", "r"], "item_a": ["a", "a", "d"], "item_b": ["b", "c", "e"]}),
    ).write(folder / "data")
    module = UnirankModule(model="tiny", adapter=RetrievalAdapter(max_length=64), schedule=Schedule(1, 1), lr=1e-3)
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ModelCheckpoint(dirpath=folder, filename="final")],
    )
    trainer.fit(module, datamodule=UnirankDataModule(TablesDir(str(folder / "data"))))
    return folder / "final.ckpt", module


def test_export_loads_in_both_libraries_with_the_checkpoint_scores(checkpoint, tmp_path):
    from sentence_transformers import CrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path, trained = checkpoint
    export_checkpoint(path, tmp_path / "model")
    expected = load_checkpoint(path).scorer.score_texts([q for q, _ in PAIRS], [d for _, d in PAIRS])
    np.testing.assert_allclose(
        expected, trained.scorer.score_texts([q for q, _ in PAIRS], [d for _, d in PAIRS]), atol=1e-6
    )

    probabilities = CrossEncoder(str(tmp_path / "model")).predict(PAIRS)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-expected)), atol=1e-5)

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    with torch.no_grad():
        logits = model(
            **tokenizer([q for q, _ in PAIRS], [d for _, d in PAIRS], padding=True, return_tensors="pt")
        ).logits[:, 0]
    np.testing.assert_allclose(logits.numpy(), expected, atol=1e-5)

    info = json.loads((tmp_path / "model/unirank.json").read_text())
    assert info["domain"] == "retrieval" and info["calibration"]["trained_through"] == "pointwise"
    assert (tmp_path / "model/model.safetensors").exists()


def test_export_and_score_commands(checkpoint, tmp_path):
    path, trained = checkpoint
    main(["export", str(path), str(tmp_path / "model")])
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"context": q, "candidate": d}) + "\n" for q, d in PAIRS))
    main(["score", "--model", str(tmp_path / "model"), "--input", str(rows), "--out", str(tmp_path / "s.jsonl")])
    scored = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    expected = trained.scorer.score_texts([q for q, _ in PAIRS], [d for _, d in PAIRS])
    np.testing.assert_allclose([r["score"] for r in scored], expected, atol=1e-5)
    assert all(0 < r["probability"] < 1 for r in scored)


def test_fit_fails_before_training_on_bad_input(repo, tmp_path):
    bad = tmp_path / "prefs.jsonl"
    bad.write_text(
        (repo / "data/demo-preferences.jsonl").read_text() + '{"prompt": "x", "chosen": "y", "rejected": 5}\n'
    )
    with pytest.raises(SystemExit, match=r"nothing was trained: .*prefs.jsonl, line 37: 'rejected' must be a string"):
        main(
            [
                "fit",
                "--config",
                str(repo / "lightning_configs/debug.yaml"),
                f"--data.source.init_args.path={bad}",
                f"--trainer.default_root_dir={tmp_path}",
                f"--export.dirpath={tmp_path / 'model'}",
                "--trainer.logger=false",
            ]
        )
    assert not (tmp_path / "model").exists()


def test_folded_calibration_is_what_cross_encoder_predict_returns(checkpoint, tmp_path):
    from sentence_transformers import CrossEncoder

    from unirank.training.export import export_model

    path, _ = checkpoint
    module = load_checkpoint(path)
    contexts, texts = [q for q, _ in PAIRS], [d for _, d in PAIRS]
    before = module.scorer.score_texts(contexts, texts)
    module.scorer.fold_affine(0.7, -0.3)
    module.scorer.final_calibration = {"a": 0.7, "b": -0.3}
    export_model(module, tmp_path / "model")
    probabilities = CrossEncoder(str(tmp_path / "model")).predict(PAIRS)
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-(0.7 * before - 0.3))), atol=1e-6)
    info = json.loads((tmp_path / "model/unirank.json").read_text())
    assert info["calibration"]["final_fit"] == {"a": 0.7, "b": -0.3}
    assert "folded into the head" in info["calibration"]["probability"]


def test_score_fuses_with_the_first_stage_when_the_model_records_a_weight(checkpoint, tmp_path):
    from unirank.training.export import export_model

    path, _ = checkpoint
    module = load_checkpoint(path)
    module.scorer.final_calibration = {"a": 1.0, "b": 0.0, "fusion": {"first_stage_weight": 2.5}}
    export_model(module, tmp_path / "model")
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"context": q, "candidate": d, "first_stage_score": 0.1 * i}) + "\n"
                            for i, (q, d) in enumerate(PAIRS)))  # fmt: skip
    main(["score", "--model", str(tmp_path / "model"), "--input", str(rows), "--out", str(tmp_path / "s.jsonl")])
    scored = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    for row in scored:
        assert row["fused_score"] == pytest.approx(row["score"] + 2.5 * row["first_stage_score"])
        assert row["ranking_score"] == row["fused_score"]  # validation chose γ > 0: rank by the fused score
    module.scorer.final_calibration = {"a": 1.0, "b": 0.0, "fusion": {"first_stage_weight": 0.0}}
    export_model(module, tmp_path / "model-gamma0")
    main(["score", "--model", str(tmp_path / "model-gamma0"), "--input", str(rows), "--out", str(tmp_path / "t.jsonl")])
    for row in map(json.loads, (tmp_path / "t.jsonl").read_text().splitlines()):
        assert row["ranking_score"] == row["score"]


def test_a_checkpoint_keeps_trust_remote_code_but_never_turns_it_on_alone(checkpoint, tmp_path):
    path, _ = checkpoint
    state = torch.load(path, map_location="cpu", weights_only=True)
    config = json.loads(state["unirank"]["config"])
    assert config["trust_remote_code"] is False
    state["unirank"]["config"] = json.dumps({**config, "trust_remote_code": True})
    remote = tmp_path / "remote.ckpt"
    torch.save(state, remote)
    with pytest.raises(ValueError, match="runs its own code"):
        load_checkpoint(remote)
    module = load_checkpoint(remote, trust_remote_code=True)
    assert module.trust_remote_code and module.config()["trust_remote_code"] is True
    with pytest.raises(SystemExit, match=r"unirank export: .* \(--trust-remote-code\)"):
        main(["export", str(remote), str(tmp_path / "refused")])
    main(["export", str(remote), str(tmp_path / "model"), "--trust-remote-code"])
    assert (tmp_path / "model" / "unirank.json").exists() and not (tmp_path / "refused").exists()


def test_a_checkpoint_without_its_final_calibration_is_scored_with_a_warning_that_says_so(checkpoint):
    from unirank.model import Model

    path, _ = checkpoint
    with pytest.warns(UserWarning, match="holds no final calibration.*score the export"):
        Model.from_pretrained(path)
