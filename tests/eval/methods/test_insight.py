"""INSIGHT on planted features (it must find them) and as a real tiny run of the frame."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from eval.methods import MethodRunConfig, run_method
from eval.methods.insight import InsightOptions, localise, predict, train_head
from eval.methods.insight_model import location_prior, smoothmax
from eval.methods.masks import PatchMasks
from eval.methods.localisation import best_dice_threshold, dice
from eval.methods.metrics import auroc_per_finding
from eval.methods.io import load_safetensors


def test_smoothmax_lies_between_mean_and_max():
    z = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    flat = z.flatten(2)
    lo, hi = smoothmax(z, 1e-4), smoothmax(z, 200.0)
    torch.testing.assert_close(lo, flat.mean(-1), atol=1e-3, rtol=0)
    torch.testing.assert_close(hi, flat.max(-1).values, atol=0.05, rtol=0)
    mid = smoothmax(z, 4.0)
    assert (mid >= flat.mean(-1) - 1e-6).all() and (mid <= flat.max(-1).values + 1e-6).all()


def _planted(n: int, seed: int, side: int = 6, d: int = 8):
    """Features: noise; a study with finding j has channel j raised on a random 2 x 2 block."""
    g = np.random.default_rng(seed)
    x = g.normal(0, 1, (n, side, side, d)).astype(np.float32)
    y = g.random((n, 2)) < 0.4
    where = np.zeros((n, 2, side, side), bool)
    for i, j in zip(*np.nonzero(y), strict=True):
        r, c = g.integers(0, side - 1, 2)
        where[i, j, r:r + 2, c:c + 2] = True
    x[..., 0] += 5 * where[:, 0]
    x[..., 1] += 5 * where[:, 1]
    return torch.from_numpy(x), y, where


def test_heads_localise_planted_evidence_from_image_labels_only():
    # r = 2: a 2 x 2 block in a 6 x 6 grid wants a sharper pooling than the phantoms' default
    opts = InsightOptions(hidden=16, epochs=20, eval_every=5, batch_size=64, lr=1e-2, smoothmax_r=2.0)
    x_tr, y_tr, _ = _planted(192, 0)
    x_va, y_va, w_va = _planted(80, 1)
    x_te, y_te, w_te = _planted(80, 2)
    head, val = train_head(x_tr, torch.from_numpy(y_tr).float(), x_va, y_va, opts, seed=0)
    score, heat, _, _ = predict(head, x_te, opts)
    assert val > 0.9 and auroc_per_finding(score, y_te).min() > 0.9
    for j in range(2):
        rows = np.flatnonzero(y_va[:, j])
        t, _ = best_dice_threshold(predict(head, x_va, opts)[1][rows, j], w_va[rows, j])
        pos = np.flatnonzero(y_te[:, j])
        assert np.mean([dice(heat[i, j] >= t, w_te[i, j]) for i in pos]) > 0.7
    # the same heads on shuffled labels learn nothing that transfers
    perm = np.random.default_rng(9).permutation(len(y_tr))
    _, val_shuffled = train_head(x_tr, torch.from_numpy(y_tr[perm]).float(), x_va, y_va, opts, seed=0)
    assert val_shuffled < 0.75


def test_location_prior_is_where_positives_exceed_negatives_from_labels_only():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 2, 4, 4, generator=g)  # (N, F, n, n)
    labels = torch.zeros(40, 2)
    labels[:20, 0] = 1
    labels[:, 1] = 1  # finding 1 has no negative study: no contrast to learn
    logits[:20, 0, 2, 3] += 3.0
    prior = location_prior(logits, labels)  # (F, n, n)
    assert prior.shape == (2, 4, 4)
    assert divmod(int(prior[0].argmax()), 4) == (2, 3) and prior[0, 2, 3] > 2.0
    assert (prior[1] == 0).all()


def test_localise_picks_per_finding_the_candidate_map_with_the_best_validation_dice():
    g = np.random.default_rng(0)
    tgt = np.zeros((60, 2, 4, 4))
    for i in range(60):
        r, c = g.integers(0, 3, 2)
        tgt[i, 0, r:r + 2, c:c + 2] = 1.0  # finding 0 moves; finding 1 always in the corner
    tgt[:, 1, :2, :2] = 1.0
    good = np.stack([tgt[:, 0] + 0.3 * g.random((60, 4, 4)), 0.3 * g.random((60, 4, 4))], 1)
    prior = np.broadcast_to(tgt[:, 1:].mean(0, keepdims=True) * [[[[0]], [[1]]]], tgt.shape)
    cands = {"image": good, "prior": prior + 0.01 * g.random(tgt.shape)}
    masks = PatchMasks([str(i) for i in range(60)], ["moves", "corner"], tgt, np.ones((60, 2), bool))
    pos = np.ones((60, 2), bool)
    va, te = slice(0, 30), slice(30, 60)
    sub = lambda m, s: PatchMasks(m.study_ids[s], m.findings, m.fraction[s], m.known[s])  # noqa: E731
    out = localise({k: v[va] for k, v in cands.items()}, {k: v[te] for k, v in cands.items()},
                   sub(masks, va), sub(masks, te), pos[va], pos[te])
    assert out["moves"]["map"] == "image" and out["corner"]["map"] == "prior"
    assert out["moves"]["dice"] > 0.9 and out["corner"]["dice"] > 0.9


def test_insight_run_writes_maps_metrics_and_resumes(tiny_adapter, phantom_dir, tmp_path):
    cfg = MethodRunConfig(method="insight", data=str(phantom_dir), out=str(tmp_path / "ins"),
                          model="tiny", model_options={"image_size": 112}, progress=False,
                          options={"epochs": "10", "eval_every": "5", "min_positives": "2",
                                   "hidden": "8"})
    m = run_method(cfg, adapter=tiny_adapter)
    out = tmp_path / "ins"
    findings = m["findings"]
    assert findings and set(m["per_finding"]) == set(findings)
    tensors, meta = load_safetensors(out / "model.safetensors")
    assert meta["findings"] == findings and any(k.startswith("shuffled.") for k in tensors)
    maps = sorted((out / "maps").glob("*.safetensors"))
    assert len(maps) == m["split_sizes"]["test"] == 6
    one, meta = load_safetensors(maps[0])
    assert one["heatmap"].shape == (len(findings), 8, 8) and meta["findings"] == findings
    assert ((one["heatmap"] >= 0) & (one["heatmap"] <= 1)).all()
    assert one["localisation"].shape == one["heatmap"].shape
    row = next(iter(m["per_finding"].values()))
    for key in ("auroc", "auroc_shuffled", "dice", "dice_constant", "dice_heatmap",
                "dice_label_prior", "map", "n_skipped_no_mask", "few_positives"):
        assert key in row
    pos = sum(r["n_pos_test"] for r in m["per_finding"].values())
    counted = sum(r["n_scored"] + r["n_skipped_no_mask"] + r["n_outside_crop"]
                  for r in m["per_finding"].values())
    assert counted == pos  # every positive test pair is scored or counted as skipped
    # interrupted before metrics.json: the rerun reloads the saved heads and gives the same numbers
    (out / "metrics.json").unlink()
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    again = run_method(cfg, adapter=tiny_adapter)
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    assert json.dumps(again["per_finding"], sort_keys=True) == json.dumps(m["per_finding"], sort_keys=True)


@pytest.mark.parametrize("opts, message", [
    ({"detect_kernel": 2}, "pass an odd kernel size"),
    ({"detect_kernel": 5, "context_kernel": 3}, "must exceed detect_kernel"),
    ({"smoothmax_r": 0}, "smoothmax_r must be > 0"),
    ({"localise_from": ("fused", "context")}, "must name some of fused, detection"),
    ({"prior_weights": (0.0, -1.0)}, "prior_weights .* must be >= 0"),
])
def test_bad_options_name_the_fix(opts, message):
    with pytest.raises(ValueError, match=message):
        InsightOptions(**opts)


def test_too_few_positives_is_an_error_naming_the_fix(tiny_adapter, phantom_dir, tmp_path):
    cfg = MethodRunConfig(method="insight", data=str(phantom_dir), out=str(tmp_path / "few"),
                          model="tiny", model_options={"image_size": 112}, progress=False,
                          options={"min_positives": 1000})
    with pytest.raises(ValueError, match="lower --opt min_positives"):
        run_method(cfg, adapter=tiny_adapter)
    assert not (tmp_path / "few" / "metrics.json").exists()
    assert dataclasses.fields(InsightOptions)
