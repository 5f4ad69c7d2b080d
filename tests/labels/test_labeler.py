"""Report labeler: accuracy on phantom reports (ground truth from the generator), on
hand-written MIMIC-CXR / Open-i style text, laterality and scoring (the ``radinterp label``
command: tests/eval/test_label_cli.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from radinterp.data.phantoms import PhantomConfig
from radinterp.data.phantoms.writer import study_record
from radinterp.labels import ALL_LABELS, Labeler, agreement, label_report

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


def test_agreement_undefined_scores():
    # positive class never referenced nor predicted: its F1 is undefined (None), not 0 or 1
    agr = agreement([{"Edema": 0}], [{"Edema": 0}])
    e = agr["observations"]["Edema"]
    assert e["f1"] is None and e["uncertain_f1"] is None and e["negative_f1"] == 1.0
    assert e["precision"] == 0.0 and e["recall"] == 0.0  # agreement.json's reading of 0 / 0
    assert e["f1_3class"] == 1.0 and agr["macro_f1"] is None and agr["macro_f1_3class"] == 1.0
    # a missed positive: F1 is defined and 0
    miss = agreement([{}], [{"Fracture": 1}])["observations"]["Fracture"]
    assert miss["f1"] == 0.0 and miss["precision"] == 0.0 and miss["recall"] == 0.0
