"""`radinterp demo` runs every built stage end to end (tiny model) and resumes as a no-op."""

from __future__ import annotations

import json

from eval.demo import DemoConfig, format_summary, run_demo


def test_demo_pipeline_with_tiny_model(tmp_path):
    cfg = DemoConfig(out=str(tmp_path / "demo"), model="tiny", n_studies=8, site="lm.blocks.1.resid_post",
                     image_size=112, eval_studies=0, sae_passes=2, expansion=2, k=8, progress=False)
    summary = run_demo(cfg)
    out = tmp_path / "demo"
    for stage in ("phantoms", "acts", "sae"):
        assert (out / stage).is_dir()
    assert summary["n_studies"] == 8 and summary["n_tokens"] > 8 * 64
    assert summary["d_sae"] == 128
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["finding_latents"] == summary["finding_latents"]
    assert summary["finding_latents"] and summary["finding_latents_all_positions"]
    for f in summary["finding_latents"] + summary["finding_latents_all_positions"]:
        assert 0.0 <= f["auroc"] <= 1.0 and 0 <= f["latent"] < 128
    assert "best latent" in format_summary(summary)
    sae_mtime = (out / "sae" / "sae_weights.safetensors").stat().st_mtime
    again = run_demo(cfg)  # every stage is complete: nothing is recomputed
    assert again["finding_latents"] == summary["finding_latents"]
    assert (out / "sae" / "sae_weights.safetensors").stat().st_mtime == sae_mtime
