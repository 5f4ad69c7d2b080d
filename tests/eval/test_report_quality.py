"""eval-reports: generate, label, score against planted labels."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from eval.report_quality import ReportQualityConfig, default_findings, format_table, register, score_labels


def test_scores_count_hedged_mentions_as_positive():
    true = [{"Cardiomegaly": 1}, {"Cardiomegaly": -1}, {"Cardiomegaly": 0}, {}]
    pred = [{"Cardiomegaly": -1}, {}, {"Cardiomegaly": 1}, {"Pleural Effusion": 1}]
    s = score_labels(pred, true, ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"])
    card = s["per_finding"]["Cardiomegaly"]
    assert (card["n_true"], card["n_pred"]) == (2, 2)
    assert card["f1"] == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    assert s["per_finding"]["Pleural Effusion"]["f1"] == 0.0  # one false positive
    assert s["per_finding"]["Pneumothorax"]["f1"] is None  # nothing to score
    assert s["macro_f1"] == pytest.approx(0.25) and s["n_findings_scored"] == 2


def test_scores_refuse_misaligned_lists():
    with pytest.raises(ValueError, match="align"):
        score_labels([{}], [{}, {}], ["Cardiomegaly"])


def test_default_findings_are_the_thirteen_trained_labels():
    f = default_findings()
    assert len(f) == 13 and "Lung Lesion" in f and "Endotracheal Tube" in f and "Fracture" in f


def test_config_validation_names_the_fix():
    with pytest.raises(ValueError, match="data"):
        ReportQualityConfig(out="x")
    with pytest.raises(ValueError, match="bfloat16"):
        ReportQualityConfig(data="d", out="o", dtype="float16")


def test_eval_reports_cli_writes_report_quality_json(tmp_path):
    from radinterp.data.phantoms.config import PhantomConfig
    from radinterp.data.phantoms.writer import generate_phantoms

    data = generate_phantoms(PhantomConfig(n=3, seed=99, size=112, prior_fraction=0.0, save_masks=False),
                             tmp_path / "ph", progress=False)
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None: ...

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["eval-reports", "--model", "demo", "--data", str(data), "--out", str(out),
                                   "--max-new-tokens", "12", "--batch-size", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "report_quality.json").read_text())
    assert result["n_studies"] == 3 and len(result["reports"]) == 3
    assert set(result["per_finding"]) == set(default_findings())
    assert result["macro_f1"] is None or 0.0 <= result["macro_f1"] <= 1.0
    r0 = result["reports"][0]
    assert r0["reference"] and isinstance(r0["generated"], str) and isinstance(r0["pred_labels"], dict)
    assert result["model"]["adapter"] == "demo" and result["max_new_tokens"] == 12
    assert len((out / "reports.jsonl").read_text().splitlines()) == 3
    assert "| **macro** |" in format_table(result)
