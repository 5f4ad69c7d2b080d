"""Recovery metrics and baselines on synthetic activations where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from eval.recovery.baselines import LinearProbe, shuffled_encoder
from radinterp.sae.baselines import mean_l0, random_like, threshold_for_l0
from eval.recovery.counterfactual import drop_rate, mask_share
from eval.recovery.metrics import ScopeActs, f1_columns, match_latents, split_studies, study_max
from radinterp.sae import SAEConfig, SparseAutoencoder
from sae_training.init import init_weights

D, P = 128, 16  # d_in, patches per study


def planted_case(n_studies: int = 120, seed: int = 0, amp: float = 4.0):
    """Noise activations; positive studies carry unit direction v on patches 0-3 (the 'mask')."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(D, generator=g)
    v /= v.norm()
    y = (torch.rand(n_studies, generator=g) < 0.4).numpy()
    acts = torch.randn(n_studies * P, D, generator=g)  # (N, D)
    study = np.repeat(np.arange(n_studies), P)
    patch = np.tile(np.arange(P), n_studies)
    hit = torch.from_numpy(y[study] & (patch < 4))
    acts[hit] += amp * v
    sa = ScopeActs(acts, study, patch, [f"s{i:03d}" for i in range(n_studies)])
    return sa, y, v


def sae_with_latent(v: torch.Tensor, d_sae: int = 256, thr: float = 2.8,
                    others: float = 1.5) -> SparseAutoencoder:
    """A 'trained' SAE whose latent 7 reads exactly v (threshold ``thr``); the others are random
    directions firing at ``others`` (so the SAE has a realistic L0 of ~15)."""
    sae = SparseAutoencoder(SAEConfig(d_in=D, d_sae=d_sae, k=4))
    init_weights(sae, torch.Generator().manual_seed(1))
    with torch.no_grad():
        sae.W_enc[:, 7] = v
        sae.threshold.fill_(others)
        sae.threshold[7] = thr
    return sae


def test_split_is_disjoint_complete_and_seeded():
    ids = [f"p{i}" for i in range(101)]
    sel, held = split_studies(ids, seed=3)
    assert np.intersect1d(sel, held).size == 0
    assert sorted(np.concatenate([sel, held]).tolist()) == list(range(101))
    again, _ = split_studies(list(reversed(ids)), seed=3)  # side depends on the id, not the order
    assert sorted(ids[i] for i in sel) == sorted(list(reversed(ids))[i] for i in again)
    assert not np.array_equal(sel, split_studies(ids, seed=4)[0])
    with pytest.raises(ValueError, match="repeat"):
        split_studies(["a", "a"])


def test_f1_columns_matches_definition():
    rng = np.random.default_rng(0)
    y = rng.random(50) < 0.3
    fires = rng.random((50, 4)) < 0.4
    fires[:, 0] = y
    fires[:, 3] = False
    f1 = f1_columns(fires, y)
    for j in range(4):
        tp = np.sum(fires[:, j] & y)
        fp, fn = np.sum(fires[:, j] & ~y), np.sum(~fires[:, j] & y)
        assert f1[j] == pytest.approx(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    assert f1[0] == 1.0 and f1[3] == 0.0


def test_planted_latent_beats_a_random_sae_of_the_same_sparsity():
    sa, y, v = planted_case()
    sae = sae_with_latent(v)
    sel, held = split_studies(sa.study_ids, seed=0)
    trained = match_latents(study_max(sae, sa), y, sel, held)
    assert trained.latent == 7 and trained.latent_auroc == 7
    assert trained.auroc > 0.99 and trained.f1 > 0.95
    l0 = mean_l0(sae, sa.acts)
    for mode in ("threshold", "topk"):
        rand = random_like(sae, sa.acts, target_l0=l0, mode=mode, seed=11)
        assert rand.d_sae == sae.d_sae
        base = match_latents(study_max(rand, sa), y, sel, held)
        assert trained.f1 - base.f1 > 0.15 and trained.auroc > base.auroc
    # where it fires: the planted latent's activation sits inside the mask patches
    pos = held[y[held]]
    masks = np.tile(np.arange(P) < 4, (pos.size, 1))
    share, area, n = mask_share(sae, 7, sa, pos, masks)
    assert n == pos.size and area == pytest.approx(4 / P) and share > 0.9
    # and it falls when the direction is removed (the "healthy twin")
    twin = ScopeActs(sa.acts - torch.from_numpy(y[sa.study] & (sa.patch < 4)).float()[:, None] * 4.0 * v,
                     sa.study, sa.patch, sa.study_ids)
    cur, tw = study_max(sae, sa)[pos, 7], study_max(sae, twin)[pos, 7]
    rate, pairs = drop_rate(cur, tw)
    assert pairs == pos.size and rate >= 0.9


def test_random_baselines_match_the_sparsity_they_are_given():
    sa, _, v = planted_case(seed=2)
    sae = sae_with_latent(v, thr=1.0, others=1.0)
    l0 = mean_l0(sae, sa.acts)
    assert l0 > 1
    thr = random_like(sae, sa.acts, mode="threshold", encoder="random", seed=5)
    assert mean_l0(thr, sa.acts) == pytest.approx(l0, rel=0.02)
    topk = random_like(sae, sa.acts, target_l0=3.0)
    assert mean_l0(topk, sa.acts) <= 3.0 and topk.encode(sa.acts[:5]).shape == (5, sae.d_sae)
    norms = topk.W_dec.norm(dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    shuf = shuffled_encoder(sae, sa.acts, seed=0)
    assert mean_l0(shuf, sa.acts) == pytest.approx(l0, rel=0.02)
    torch.testing.assert_close(shuf.W_dec, sae.W_dec.detach())
    pre = torch.randn(100, 10)
    assert int((pre > threshold_for_l0(pre, 2.0)).sum()) == 200


def test_linear_probe_reads_the_planted_direction():
    sa, y, v = planted_case(seed=4)
    from eval.recovery.metrics import pooled_residuals, study_mean

    sel, held = split_studies(sa.study_ids, seed=0)
    X = pooled_residuals(sa)
    probe = LinearProbe(D, 1).fit(X[torch.from_numpy(sel)], torch.from_numpy(y[sel, None]).float())
    m = match_latents(study_mean(probe, sa), y, sel, held, fixed=0)
    assert m.latent == 0 and m.auroc > 0.95 and m.f1 > 0.9
    # the mean of per-token logits is the logit of the mean residual (linear)
    torch.testing.assert_close(torch.from_numpy(study_mean(probe, sa)), probe.encode(X), rtol=1e-4, atol=1e-4)
