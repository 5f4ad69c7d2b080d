"""Report labeler: accuracy on phantom reports (ground truth from the generator), on
hand-written MIMIC-CXR / Open-i style text, laterality, scoring and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from eval.labeler import ALL_LABELS, Labeler, agreement, label_report
from eval.labeler.cli import register
from radinterp.data.phantoms import PhantomConfig, generate_phantoms
from radinterp.data.phantoms.writer import study_record

sys.path.insert(0, str(Path(__file__).parent))
from realistic_reports import CASES  # noqa: E402


@pytest.fixture(scope="module")
def phantom_reports():
    # reports and planted labels only (no rendering): fast
    cfg = PhantomConfig(n=300, seed=123, prior_fraction=0.4, uncertainty_rate=0.25)
    return [study_record(cfg, i) for i in range(cfg.n)]


def test_macro_f1_on_phantom_reports(phantom_reports):
    pred = [label_report(r["report"]) for r in phantom_reports]
    agr = agreement(pred, [r["labels"] for r in phantom_reports])
    assert agr["macro_f1"] >= 0.95, agr
    assert agr["macro_f1_3class"] >= 0.95, agr
    scored = set(agr["observations"])
    assert {"Cardiomegaly", "Pleural Effusion", "Pneumothorax", "Consolidation", "Edema",
            "Atelectasis", "Lung Lesion", "Fracture", "Support Devices", "No Finding",
            "Nasogastric Tube", "NG Tube Malpositioned"} <= scored


@pytest.mark.parametrize("text,expected", CASES, ids=[c[0][:40] for c in CASES])
def test_realistic_report_text(text, expected):
    assert label_report(text) == expected


def test_realistic_agreement_figure():
    pred = [label_report(t) for t, _ in CASES]
    agr = agreement(pred, [e for _, e in CASES])
    assert agr["macro_f1"] >= 0.95 and agr["macro_f1_3class"] >= 0.9


def test_laterality_and_mentions():
    lab = Labeler()
    ms = {m.observation: m for m in lab.extract(
        "Small left pleural effusion. Consolidation in the right lower lobe. Bibasilar "
        "atelectasis. No pneumothorax.")}
    assert ms["Pleural Effusion"].side == "left" and ms["Pleural Effusion"].value == 1
    assert ms["Consolidation"].side == "right"
    assert ms["Atelectasis"].side == "bilateral"
    assert ms["Pneumothorax"].value == 0 and ms["Pneumothorax"].side is None


def test_laterality_matches_planted_side(phantom_reports):
    """For positively reported lateral findings the extracted side equals the planted one."""
    obs_of = {"pleural_effusion": "Pleural Effusion", "pneumothorax": "Pneumothorax",
              "consolidation": "Consolidation", "lung_nodule": "Lung Lesion",
              "atelectasis": "Atelectasis", "rib_fracture": "Fracture"}
    lab = Labeler()
    hits = total = 0
    for r in phantom_reports:
        mentions = lab.extract(r["report"])
        for name, obs in obs_of.items():
            if name in r["findings"] and r["labels"].get(obs) == 1:
                total += 1
                sides = {m.side for m in mentions if m.observation == obs and m.value == 1}
                hits += r["findings"][name]["side"] in sides
    assert total > 50 and hits / total >= 0.95, (hits, total)


def test_blank_and_unmentioned():
    assert label_report("") == {}
    out = label_report("ET tube 5 cm above the carina.")
    assert "Pneumothorax" not in out and out["Endotracheal Tube"] == 1
    assert set(out) <= set(ALL_LABELS)


def test_agreement_scores_only_referenced_observations():
    ref = [{"Edema": 1}, {"Edema": 0}, {"Edema": 1, "Pneumothorax": 0}, {"Pneumothorax": 1}]
    pred = [{"Edema": 1}, {"Edema": 1}, {"Pneumothorax": 0}, {"Pneumothorax": 1, "Edema": 1}]
    agr = agreement(pred, ref)
    e = agr["observations"]["Edema"]
    assert e["n"] == 3  # study 4 has no Edema reference: its prediction is not scored
    assert e["precision"] == pytest.approx(0.5) and e["recall"] == pytest.approx(0.5)
    assert e["f1"] == pytest.approx(0.5) and e["accuracy"] == pytest.approx(1 / 3)
    p = agr["observations"]["Pneumothorax"]
    assert p["f1"] == pytest.approx(1.0) and p["negative_f1"] == pytest.approx(1.0)
    assert agr["macro_f1"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="align"):
        agreement(pred[:2], ref)


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


def test_cli_on_jsonl_and_phantom_folder(tmp_path):
    src = tmp_path / "reports.jsonl"
    rows = [{"study_id": f"s{i}", "report": t, "labels": e} for i, (t, e) in enumerate(CASES[:10])]
    rows.append({"study_id": "nolabels", "report": "Small right pleural effusion."})
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(
        _app(), ["label", "--data", str(src), "--out", str(out), "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [r["study_id"] for r in labels] == [r["study_id"] for r in rows]
    assert labels[-1]["labels"]["Pleural Effusion"] == 1
    agr = json.loads((out / "agreement.json").read_text())
    assert agr["n_studies"] == 10 and agr["macro_f1"] == pytest.approx(1.0)
    assert {"precision", "recall", "f1"} <= set(agr["observations"]["No Finding"])

    ph = generate_phantoms(PhantomConfig(n=12, seed=5, size=64), tmp_path / "ph", progress=False)
    res = CliRunner().invoke(_app(), ["label", "--data", str(ph), "--out", str(tmp_path / "o2"),
                                      "--no-progress"])
    assert res.exit_code == 0 and "macro_f1=" in res.output
    assert json.loads((tmp_path / "o2" / "agreement.json").read_text())["n_studies"] == 12


@pytest.mark.parametrize("line,message", [
    ('{"study_id": "a"}', "string 'report'"),
    ('{"study_id": "a", "report": "x", "labels": {"Unicorn": 1}}', "unknown observation"),
    ('{"study_id": "a", "report": "x", "labels": {"Edema": 2}}', "1, 0 or -1"),
    ("not json", "not valid JSON"),
])
def test_cli_bad_input(tmp_path, line, message):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"study_id": "ok", "report": "No effusion."}\n' + line + "\n")
    res = CliRunner().invoke(_app(), ["label", "--data", str(src), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and message in res.output and "bad.jsonl:2" in res.output
    missing = CliRunner().invoke(_app(), ["label", "--data", str(tmp_path / "nope"),
                                          "--out", str(tmp_path / "o")])
    assert missing.exit_code == 2 and "not found" in missing.output
