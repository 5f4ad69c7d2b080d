"""``radinterp eval`` end to end on a real tiny release (capture, train, eval)."""

from __future__ import annotations

import json

import pytest

from eval.sae_eval import EvalConfig, run_eval


def test_metrics_match_training_and_beat_random(tiny_release) -> None:
    m = json.loads((tiny_release.eval_out / "metrics.json").read_text())
    cal = json.loads((tiny_release.sae / "calibration.json").read_text())
    assert m["rows"]["mode"] == "held_out" and m["rows"]["n"] == cal["held_out_tokens"]
    t, r = m["reconstruction"]["trained"], m["reconstruction"]["random"]
    # the same held-out rows training calibrated on: eval's definitions reproduce its numbers
    assert t["overall"]["explained_variance"] == pytest.approx(cal["jumprelu"]["explained_variance"], abs=1e-4)
    assert t["overall"]["l0"] == pytest.approx(cal["jumprelu"]["l0"], rel=1e-3)
    assert t["overall"]["mse"] == pytest.approx(cal["jumprelu"]["mse"], rel=1e-3)
    assert r["overall"]["l0"] == pytest.approx(t["overall"]["l0"], rel=0.1)
    assert t["overall"]["explained_variance"] > r["overall"]["explained_variance"] + 0.1
    assert sum(d["rows"] for d in t["by_kind"].values()) == t["overall"]["rows"]
    assert set(t["by_kind"]) >= {"image", "report"}
    prefix = t["overall"]["explained_variance_prefix"]
    assert sorted(prefix, key=int) == ["32", "128"] and prefix["128"] == t["overall"]["explained_variance"]
    fire = t["firing"]
    assert fire["d_sae"] == 128 and sum(fire["log10_freq_hist"]["counts"]) == 128 - fire["dead"]
    fid = m["fidelity"]
    ce = fid["ce_loss"]
    assert fid["report_tokens"] > 50 and fid["method"] == "suffix"
    gap = ce["zero_ablation"] - ce["clean"]
    assert fid["ce_loss_score"]["sae"] == pytest.approx((ce["zero_ablation"] - ce["sae"]) / gap)
    assert fid["kl"]["sae"] >= 0 and fid["kl"]["zero_ablation"] > 0
    con = m["concepts"]
    assert con["labels"] and con["selection"] + con["held_out"] == con["studies"] == 24
    html = (tiny_release.eval_out / "metrics.html").read_text()
    offline = "Plotly.newPlot" in html and 'src="https://' not in html and 'src="http://' not in html
    assert offline, "metrics.html must embed plotly and fetch nothing"


def test_rerun_is_a_noop_and_parts_resume(tiny_release, tmp_path) -> None:
    out = tiny_release.eval_out
    before = (out / "metrics.json").stat().st_mtime_ns
    run_eval(EvalConfig(sae=str(tiny_release.sae), acts=str(tiny_release.acts), out=str(out)))
    assert (out / "metrics.json").stat().st_mtime_ns == before
    # an interrupted run: metrics.json missing, parts kept -> finished parts are not recomputed
    for p in (out / "parts").glob("*.json"):
        (tmp_path / "parts").mkdir(exist_ok=True)
        (tmp_path / "parts" / p.name).write_bytes(p.read_bytes())
    marked = json.loads((tmp_path / "parts" / "reconstruction.json").read_text())
    marked["seconds"] = -1.0
    (tmp_path / "parts" / "reconstruction.json").write_text(json.dumps(marked))
    m = run_eval(EvalConfig(sae=str(tiny_release.sae), acts=str(tiny_release.acts), out=str(tmp_path),
                            fidelity_studies=0, probe_studies=0, progress=False))
    assert m["reconstruction"]["trained"] == marked["trained"]
    assert (tmp_path / "metrics.json").exists()


def test_other_store_rows_all_and_max_tokens(tiny_release, tmp_path) -> None:
    m = run_eval(EvalConfig(sae=str(tiny_release.sae), acts=str(tiny_release.acts), out=str(tmp_path),
                            rows="all", max_tokens=500, fidelity_studies=0, probe_studies=0,
                            progress=False))
    assert m["rows"] == {"mode": "all", "range": [0, 500], "n": 500, "studies": m["rows"]["studies"]}
    assert m["fidelity"] is None and m["concepts"] is None


def test_bad_inputs_are_one_line_errors(tiny_release, tmp_path) -> None:
    from typer.testing import CliRunner
    import typer

    from radinterp.sae import SAEConfig, SparseAutoencoder, load_sae, save_sae
    from radinterp.store import StoreWriter, make_manifest
    from eval.sae_eval.cli import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer's multi-command layout
        pass

    def run(*args):
        res = CliRunner().invoke(app, ["eval", *map(str, args), "--out", str(tmp_path / "o"),
                                       "--no-progress"])
        assert res.exit_code == 2, res.output
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and "(fix: " in lines[0], res.output
        return lines[0]

    sae = load_sae(tiny_release.sae)
    other_site = SparseAutoencoder(SAEConfig(d_in=sae.d_in, d_sae=8, k=2, site="lm.blocks.0.resid_post"))
    save_sae(other_site, tmp_path / "site")
    assert "lm.blocks.0.resid_post" in run("--sae", tmp_path / "site", "--acts", tiny_release.acts)
    wide = SparseAutoencoder(SAEConfig(d_in=sae.d_in + 1, d_sae=8, k=2, site=sae.cfg.site))
    save_sae(wide, tmp_path / "wide")
    assert "d_in=" in run("--sae", tmp_path / "wide", "--acts", tiny_release.acts)
    manifest = make_manifest(model="tiny", sites=[sae.cfg.site], dtype="float32",
                             d_model=sae.d_in, token_filter="all")
    with StoreWriter(tmp_path / "empty", manifest):
        pass
    assert "holds no rows" in run("--sae", tiny_release.sae, "--acts", tmp_path / "empty")
    (tmp_path / "neither").mkdir()
    (tmp_path / "neither" / "weights.bin").write_bytes(b"x")
    assert "known layout" in run("--sae", tmp_path / "neither", "--acts", tiny_release.acts)
