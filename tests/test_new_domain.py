"""A domain defined outside the package, in this file alone: claim-evidence verification (does the
evidence support the claim?). It trains, exports, scores and evaluates through unirank's own
entry points without touching any unirank file: an adapter, a data source, and a `Domain` that
says how to measure it, registered by name."""

import json

import pytest

from unirank import domains
from unirank.adapters import Adapter, Encoded
from unirank.api import fit
from unirank.commands.evaluate import evaluate
from unirank.commands.inference import score
from unirank.data.datamodule import UnirankDataModule
from unirank.data.sources import DataSource
from unirank.data.tables import tables_from_rows
from unirank.metrics.calibration import calibration_metrics
from unirank.model import Model
from unirank.module import Schedule, UnirankModule
from unirank.training.export import export_model


class ClaimAdapter(Adapter):
    """(claim, evidence) as a sentence pair, each side marked."""

    domain = "claims"

    def __init__(self, max_length: int = 48):
        self.max_length, self.init_args = max_length, {"max_length": max_length}

    def encode(self, tokenizer, contexts, candidates, steps=None):
        batch = tokenizer(
            [f"claim: {c}" for c in contexts],
            [f"evidence: {e}" for e in candidates],
            truncation="longest_first",
            max_length=self.max_length,
        )
        return [Encoded(ids, types) for ids, types in zip(batch["input_ids"], batch["token_type_ids"])]

    def describe(self) -> dict:
        return {"domain": self.domain, "max_length": self.max_length, "input": "('claim: c', 'evidence: e')"}


class ClaimFile(DataSource):
    """JSONL of {"claim", "evidence", "supports"}: a group per claim, each evidence an item labelled 0/1."""

    def __init__(self, path: str):
        self.path = path

    def load(self):
        rows = [json.loads(line) for line in open(self.path, encoding="utf-8")]
        claims = sorted({row["claim"] for row in rows})
        groups = [
            {"group_id": f"c{k}", "context": claim, "split": "validation" if k % 4 == 0 else "train"}
            for k, claim in enumerate(claims)
        ]
        items = [
            {"group_id": f"c{claims.index(r['claim'])}", "item_id": f"e{n}", "text": r["evidence"],
             "label": float(r["supports"])}
            for n, r in enumerate(rows)
        ]  # fmt: skip
        return tables_from_rows(groups, items, [], self.path)


class Claims(domains.Domain):
    name = "claims"
    adapter = ClaimAdapter
    reliability_title = "σ(score) vs support"

    def evaluate(self, models, tables, options):
        label = tables.items["label"].to_numpy()
        report = {"domain": self.name, "pairs": len(label), "systems": {}}
        for name, model in models.items():
            prob = model.predict(list(zip(tables.item_contexts(), tables.items["text"].to_list())))
            entry = {"accuracy": float(((prob > 0.5) == (label > 0.5)).mean())}
            entry["calibration"], entry["_curve"] = calibration_metrics(prob, label), (prob, label)
            report["systems"][name] = entry
        return report

    def summary_lines(self, report):
        return [
            f"{name}: accuracy {e['accuracy']:.3f} over {report['pairs']} pairs"
            for name, e in report["systems"].items()
        ]


@pytest.fixture
def claims_file(tmp_path):
    rows = []
    for k in range(24):
        claim = f"Substance {k} dissolves in water."
        rows += [
            {"claim": claim, "evidence": f"Substance {k} is highly soluble in water.", "supports": 1},
            {"claim": claim, "evidence": f"The museum opened in {1900 + k}.", "supports": 0},
        ]
    path = tmp_path / "claims.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_domain_defined_outside_the_package_fits_exports_scores_and_evaluates(claims_file, tmp_path, capsys):
    domains.register(Claims())
    module = UnirankModule(model="tiny", adapter=ClaimAdapter(), schedule=Schedule(1, 1), seed=0)
    fit(module, UnirankDataModule(ClaimFile(str(claims_file)), batch_groups=4))
    export = export_model(module, tmp_path / "model")
    assert json.loads((export / "unirank.json").read_text())["domain"] == "claims"

    model = Model.from_pretrained(export)
    assert isinstance(model.scorer.adapter, ClaimAdapter) and model.domain == "claims"
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"context": "Salt dissolves in water.", "candidate": "Salt is soluble."}) + "\n")
    score(str(export), rows, tmp_path / "scored.jsonl")
    scored = json.loads((tmp_path / "scored.jsonl").read_text())
    assert scored["probability"] == pytest.approx(model.predict([("Salt dissolves in water.", "Salt is soluble.")])[0])

    evaluate(str(export), tmp_path / "report", source=ClaimFile(str(claims_file)), split="validation")
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["domain"] == "claims" and 0.0 <= metrics["systems"]["model"]["accuracy"] <= 1.0
    assert (tmp_path / "report" / "reliability.png").exists()
    assert "accuracy" in capsys.readouterr().out


def test_a_model_of_an_unregistered_domain_is_refused_naming_it(claims_file, tmp_path, monkeypatch):
    domains.register(Claims())
    export = export_model(UnirankModule(model="tiny", adapter=ClaimAdapter()), tmp_path / "model")
    monkeypatch.setattr(domains, "_registered", {})  # a process that never defined the domain
    with pytest.raises(ValueError, match="unknown adapter 'ClaimAdapter'.*unknown domain 'claims'.*register"):
        Model.from_pretrained(export)


def test_a_domain_declared_by_an_installed_package_loads_from_its_entry_point(monkeypatch):
    from importlib import metadata

    point = metadata.EntryPoint(name="claims-ep", value=f"{__name__}:CLAIMS_EP", group=domains.ENTRY_POINTS)
    monkeypatch.setattr(metadata, "entry_points", lambda group, name: [point] if name == "claims-ep" else [])
    assert domains.get("claims-ep") is CLAIMS_EP


class ClaimsEntryPoint(Claims):
    name = "claims-ep"


CLAIMS_EP = ClaimsEntryPoint()


def test_models_of_the_built_in_domains_keep_their_evaluation():
    assert {domains.get(name).adapter.__name__ for name in ("retrieval", "chat", "process")} == {
        "RetrievalAdapter", "ChatAdapter", "ProcessAdapter"
    }  # fmt: skip
