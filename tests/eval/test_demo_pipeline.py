"""`radinterp demo` runs every built stage end to end (tiny model) and resumes as a no-op."""

from __future__ import annotations

import json

from eval.demo import DemoConfig, format_summary, run_demo


def test_demo_pipeline_with_tiny_model(tmp_path):
    cfg = DemoConfig(out=str(tmp_path / "demo"), model="tiny", n_studies=12, site="lm.blocks.1.resid_post",
                     image_size=112, eval_studies=0, sae_passes=2, expansion=2, k=8, sae_tokens="image",
                     progress=False)
    summary = run_demo(cfg)
    out = tmp_path / "demo"
    for stage in ("phantoms", "acts", "sae"):
        assert (out / stage).is_dir()
    from radinterp.store import open_store

    store = open_store(out / "acts")
    assert summary["n_studies"] == 12 and summary["sae_tokens"] == "image"
    assert summary["n_tokens"] == store.num_tokens(cfg.site, ["image"]) < store.num_tokens(cfg.site)
    assert summary["d_sae"] == 128
    on_disk = json.loads((out / "summary.json").read_text())
    rec = summary["recovery"]
    assert on_disk["recovery"]["summary"] == rec["summary"]
    assert set(rec["scopes"]) == {"image", "text"} and (out / "twins").is_dir()
    for scope, s in rec["scopes"].items():
        assert s["l0_random"] > 0 and abs(s["l0_random"] - s["l0_trained"]) <= 0.5 + 0.05 * s["l0_trained"]
        for f in s["findings"]:
            for enc in ("trained", "random"):
                assert 0.0 <= f[enc]["f1"] <= 1.0 and 0 <= f[enc]["latent"] < 128
            assert ("cf_drop" in f["trained"]) == (scope == "image")
    text = format_summary(summary)
    assert "image positions" in text and "text positions" in text and "random" in text
    sae_mtime = (out / "sae" / "sae_weights.safetensors").stat().st_mtime
    again = run_demo(cfg)  # every stage is complete: nothing is recomputed
    assert again["recovery"]["summary"] == summary["recovery"]["summary"]
    assert (out / "sae" / "sae_weights.safetensors").stat().st_mtime == sae_mtime
