"""`radinterp demo` runs every stage end to end (tiny model, tiny sizes), resumes as a no-op, and
runs on a folder of real radiographs with the planted-truth stages skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.demo import STAGE_NAMES, DemoConfig, format_summary, headline_rows, run_demo

REAL_CXR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real-cxr"
if not REAL_CXR.is_dir():
    REAL_CXR = Path("/work/shared/data/real-cxr")

TINY = dict(model="tiny", site="lm.blocks.1.resid_post", image_size=112, sae_passes=2, k=8,
            sae_tokens="image", explain_top=6, fidelity_studies=1, steer_tokens=4, method_epochs=1,
            n_permutations=5, min_positives=2, progress=False)


@pytest.fixture(scope="module")
def phantom_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    cfg = DemoConfig(out=str(out), n_studies=16, eval_studies=1, expansion=2, steer_n=4,
                     scorers=["planted"],
                     method_opts={"radiomics": {"workers": 1, "grids": (1,), "size": 64}}, **TINY)
    return cfg, run_demo(cfg)


def test_every_stage_runs_on_phantoms(phantom_run):
    cfg, summary = phantom_run
    out = Path(cfg.out)
    stages = summary["stages"]
    assert list(stages) == list(STAGE_NAMES)
    assert {n for n, s in stages.items() if s["status"] == "skipped"} == {"autointerp_llm"}
    for folder in ("phantoms", "acts", "twins", "sae", "report_quality", "recovery", "sae_eval",
                   "autointerp", "steering", "methods", "bridge", "browser"):
        assert (out / folder / "demo_stage.json").is_file(), folder
    from radinterp.store import open_store

    store = open_store(out / "acts")
    assert summary["n_studies"] == 16 and summary["sae_tokens"] == "image" and summary["d_sae"] == 128
    assert summary["n_tokens"] == store.num_tokens(cfg.site, ["image"]) < store.num_tokens(cfg.site)
    rec = summary["recovery"]
    assert set(rec["scopes"]) == {"image", "text"}
    for s in rec["scopes"].values():
        assert s["l0_random"] > 0 and abs(s["l0_random"] - s["l0_trained"]) <= 0.5 + 0.05 * s["l0_trained"]
    # every measured number sits beside its baseline, and both are real numbers or n/a
    rows = headline_rows(summary)
    stages_in_table = {r[0] for r in rows}
    assert {"sae eval", "autointerp", "steering", "csr", "insight", "radiomics", "bridge"} <= stages_in_table
    assert all(r[3] for r in rows)  # a named baseline on every row
    ev = next(r for r in rows if r[1].startswith("explained variance"))
    assert isinstance(ev[2], float) and isinstance(ev[4], float) and ev[2] > ev[4]
    ai = stages["autointerp"]["result"]
    assert ai["n_latents"] == 6 and "planted" in ai
    steer = json.loads((out / "steering" / "run" / "steering.json").read_text())
    assert {r["method"] for r in steer["rows"]} >= {"add", "diffmean"}
    assert all(len(r["random_control_rates"]) <= 2 for r in steer["rows"])
    # the held-out phantoms lack the target, so every test study is steered and measured
    test_rows = [r for r in steer["rows"] if r["split"] == "test"]
    assert test_rows and all(r["n"] == steer["n_test"] == 2 for r in test_rows)
    assert stages["steering"]["result"]["random_rate"] is not None
    assert set(stages["methods"]["result"]) == {"csr", "insight", "radiomics"}
    index = Path(summary["browser"])
    assert index == out / "browser" / "index.html" and index.is_file()
    assert len(list((out / "browser" / "features").glob("*.html"))) == 6
    # the browser carries the steering run, the bridge and the SAE eval of this demo
    steered = (out / "browser" / "features" / f"{stages['steering']['result']['feature']}.html").read_text()
    assert "not steered" not in steered and "Steering" in steered
    assert any("Matched (one-to-one) targets" in p.read_text() for p in (out / "browser" / "features").glob("*.html"))
    assert "SAE eval" in index.read_text()
    text = format_summary(summary)
    assert "random SAE" in text and str(index) in text and "autointerp_llm" in text


def test_rerun_is_a_no_op(phantom_run):
    cfg, summary = phantom_run
    out = Path(cfg.out)
    mtimes = {p: p.stat().st_mtime for p in out.rglob("*") if p.is_file() and p.name != "summary.json"
              and p.name != "cfg.json"}
    again = run_demo(cfg)
    assert {s["status"] for s in again["stages"].values()} == {"reused", "skipped"}
    assert headline_rows(again) == headline_rows(summary)
    assert {p: p.stat().st_mtime for p in mtimes} == mtimes
    other = DemoConfig(**{**cfg.to_dict(), "k": 4})
    with pytest.raises(ValueError, match="other settings"):
        run_demo(other)


@pytest.mark.skipif(not (REAL_CXR / "metadata.jsonl").is_file(), reason="real-cxr not present")
def test_real_radiographs_skip_what_needs_planted_truth(tmp_path):
    cfg = DemoConfig(out=str(tmp_path / "real"), data=str(REAL_CXR), n_studies=8, eval_studies=0,
                     expansion=1, scorers=[], methods=[], **{**TINY, "explain_top": 3})
    summary = run_demo(cfg)
    stages = summary["stages"]
    skipped = {n for n, s in stages.items() if s["status"] == "skipped"}
    assert {"phantoms", "twins", "report_quality", "recovery", "steering", "methods"} <= skipped
    assert all(stages[n]["reason"] for n in skipped)
    assert {"capture", "sae", "sae_eval", "autointerp", "bridge", "browser"} <= {
        n for n, s in stages.items() if s["status"] == "ran"}
    assert summary["n_studies"] == 8 and summary["data"] == str(REAL_CXR)
    assert not (tmp_path / "real" / "phantoms").exists()
    assert Path(summary["browser"]).is_file()
    text = format_summary(summary)
    assert "needs planted truth" in text and "steering" in text


def test_full_preset_runs_the_local_llm_and_reports_its_parse_rate(phantom_run):
    assert DemoConfig.preset("full").llm_features == 2 and DemoConfig.preset("quick").llm_features == 0
    _, summary = phantom_run
    ai = summary["stages"]["autointerp"]["result"]
    # the LLM stage's result has the autointerp stage's shape; 1 of 4 replies unparsable
    llm = {**ai, "n_latents": 4, "n_failed": 1}
    stages = {**summary["stages"], "autointerp_llm": {"status": "ran", "result": llm, "seconds": 1.0}}
    rows = [r for r in headline_rows({**summary, "stages": stages}) if r[0] == "autointerp_llm"]
    assert rows[0][2] == 0.75 and "parsed (4 latents)" in rows[0][1]
    assert len(rows) == 1 + len([r for r in headline_rows(summary) if r[0] == "autointerp"])
