"""Recovery end to end on a few real phantoms with the tiny model: capture, SAE, baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radinterp.sae.baselines import mean_l0, random_like
from eval.recovery.counterfactual import twin_studies, write_twin_jsonl
from eval.recovery.curve import CurvePoint, calibrate_threshold, train_sae
from eval.recovery.metrics import load_scope, split_studies
from eval.recovery.plot import format_findings, format_summary_lines
from eval.recovery.prefix_capture import capture_image_prefix, load_prefix, save_prefix
from eval.recovery.recovery import RecoveryConfig, evaluate_recovery, patch_grid, scopes_from_store

SITE = "lm.blocks.1.resid_post"


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms, load_phantom_studies

    out = generate_phantoms(PhantomConfig(n=24, seed=5, size=112, prior_fraction=0.0),
                            tmp_path_factory.mktemp("rec") / "phantoms", progress=False)
    return out, load_phantom_studies(out)


def test_prefix_capture_equals_the_full_forward(tiny_adapter, phantoms, tmp_path):
    """Image rows from the truncated prompt are those of prompt + report (causal model)."""
    from radinterp.hooks import capture

    studies = phantoms[1][:3]
    got = capture_image_prefix(tiny_adapter, studies, [SITE], batch_size=2)[SITE]
    items = [tiny_adapter.build_inputs(s, with_report=True) for s in studies]
    batch = tiny_adapter.collate(items)
    with torch.inference_mode(), capture(tiny_adapter, [SITE]) as acts:
        tiny_adapter.model(**tiny_adapter.to_device(batch))
    full = torch.cat([acts[SITE][b][torch.from_numpy(np.flatnonzero(it.layout.kind == 0))]
                      for b, it in enumerate(items)])
    assert got.acts.shape == full.shape and len(items[0].input_ids) > got.acts.shape[0] / 3
    torch.testing.assert_close(got.acts, full.float(), rtol=1e-4, atol=1e-4)
    assert got.patch.max() == got.acts.shape[0] // 3 - 1 and got.study.tolist()[-1] == 2
    back = load_prefix(save_prefix({SITE: got}, tmp_path / "p.safetensors"))[SITE]
    torch.testing.assert_close(back.acts, got.acts.to(torch.bfloat16).float())
    assert back.study_ids == got.study_ids and np.array_equal(back.patch, got.patch)


def test_recovery_on_tiny_model_phantoms(phantoms, tmp_path):
    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import run_capture
    from radinterp.store import open_store

    folder, studies = phantoms
    common = dict(model="tiny", sites=[SITE], image_size=112, progress=False, batch_size=8)
    run_capture(CaptureConfig(data=str(folder), out=str(tmp_path / "acts"), **common))
    twins_jsonl = write_twin_jsonl(studies, tmp_path / "twins.jsonl")
    run_capture(CaptureConfig(data=str(twins_jsonl), out=str(tmp_path / "twins"), token_filter="image",
                              with_report=False, **common))
    store = open_store(tmp_path / "acts")
    cfg = RecoveryConfig(min_positives=1)
    scopes = scopes_from_store(store, SITE, cfg)
    image = scopes["image"]
    assert image.acts.shape[0] == 24 * image.patch.max() + 24 and scopes["text"].n_studies == 24
    sel, held = split_studies(image.study_ids)
    assert not set(sel) & set(held) and len(sel) + len(held) == 24

    point = CurvePoint(n_studies=24, d_sae=64, k=4, passes=2)
    sae = train_sae(point, image.acts, tmp_path / "sae")
    calibrate_threshold(sae, image.acts, 4)
    l0 = mean_l0(sae, image.acts)
    assert l0 == pytest.approx(4, rel=0.05)
    # the baselines have the promised shape and sparsity, measured on the real activations
    for mode in ("topk", "threshold"):
        rand = random_like(sae, image.acts, mode=mode, seed=3)
        assert (rand.d_in, rand.d_sae) == (sae.d_in, sae.d_sae)
        assert mean_l0(rand, image.acts) == pytest.approx(l0, rel=0.05)

    twins = load_scope(open_store(tmp_path / "twins"), SITE, "image")
    assert twins.study_ids == [t.study_id for t in twin_studies(studies)]
    res = evaluate_recovery(scopes, sae, studies, twins=twins, grid=patch_grid(store), cfg=cfg)
    img = res["scopes"]["image"]
    assert img["l0_trained"] == pytest.approx(4, rel=0.05)
    assert img["l0_random"] == pytest.approx(4, rel=0.05)
    assert img["findings"], "no finding had positives in both halves"
    for row in img["findings"]:
        for enc in ("trained", "random"):
            r = row[enc]
            assert 0 <= r["latent"] < 64 and 0 <= r["f1"] <= 1
            assert r["cf_pairs"] == row["n_pos_held"]
            assert np.isnan(r["mask_share"]) or 0 <= r["mask_share"] <= 1
        assert row["probe"]["latent"] == row["probe"]["latent_auroc"]  # its own column
    assert "mask_share" not in res["scopes"]["text"]["findings"][0]["trained"]
    lines = format_findings(res, "image") + format_summary_lines(res)
    assert any(row["finding"] in line for line in lines for row in img["findings"])

