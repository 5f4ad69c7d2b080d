"""Sparse kernels and BatchTopK selection against dense reference implementations."""

from __future__ import annotations

import pytest
import torch

from radinterp.sae import SAEConfig, SparseAutoencoder
from sae_training.batchtopk import select_batch_topk
from sae_training.init import init_weights
from sae_training.kernels import GatherEncode, SparseCodes, grouped_decode
from sae_training.objective import MatryoshkaObjective

WIDTHS = [6, 20, 48]


def _sae(seed: int = 1) -> SparseAutoencoder:
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=12, d_sae=48, k=3, widths=WIDTHS))
    init_weights(sae)
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_(0, 0.1)
    return sae


def _dense_reference_loss(sae: SparseAutoencoder, x: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """Matryoshka BatchTopK + aux-k loss written with dense tensors only."""
    B = x.shape[0]
    pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc  # (B, d_sae)
    flat = pre.relu().flatten()
    top = flat.topk(sae.cfg.k_int * B)
    z = torch.zeros_like(flat).scatter(0, top.indices, flat[top.indices]).view(B, -1)
    loss = x.new_zeros(())
    for w in WIDTHS:
        recon = z[:, :w] @ sae.W_dec[:w] + sae.b_dec
        loss = loss + (x - recon).pow(2).sum(-1).mean()
    idx = dead.nonzero().squeeze(1)
    k_aux = min(sae.d_in // 2, idx.numel())
    t = pre[:, idx].topk(k_aux, dim=1)
    z_aux = torch.zeros_like(pre).scatter(1, idx[t.indices], t.values)
    aux = (z_aux @ sae.W_dec - (x - recon).detach()).pow(2).sum(-1).mean()
    return loss + aux * min(idx.numel() / (sae.d_in // 2), 1.0)


@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_objective_gradients_match_dense_reference(mode: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(40, 12)
    dead = torch.zeros(48, dtype=torch.bool)
    dead[[3, 10, 30, 31, 47]] = True
    ours, ref = _sae(), _sae()
    loss = MatryoshkaObjective(ours, mode=mode)(x, dead)["loss"]
    loss.backward()
    ref_loss = _dense_reference_loss(ref, x, dead)
    ref_loss.backward()
    assert torch.allclose(loss, ref_loss, rtol=1e-5)
    for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
        g, g_ref = getattr(ours, name).grad, getattr(ref, name).grad
        assert g_ref.abs().max() > 0
        assert torch.allclose(g, g_ref, atol=1e-4, rtol=1e-4), name


@pytest.mark.parametrize("mode", ["sparse", "dense"])
def test_gather_encode_gradcheck(mode: str) -> None:
    torch.manual_seed(0)
    B, d_in, d_sae = 5, 4, 7
    x = torch.randn(B, d_in, dtype=torch.double)
    W = torch.randn(d_in, d_sae, dtype=torch.double, requires_grad=True)
    b_enc = torch.randn(d_sae, dtype=torch.double, requires_grad=True)
    b_dec = torch.randn(d_in, dtype=torch.double, requires_grad=True)
    rows = torch.tensor([0, 0, 1, 2, 2, 3, 4, 4])
    cols = torch.tensor([1, 5, 2, 0, 5, 6, 3, 5])

    def f(W, b_enc, b_dec):
        x_c = x - b_dec
        pre = (x_c @ W + b_enc)[rows, cols]
        # GatherEncode works in float32 internally: compare against double via float tolerance
        return GatherEncode.apply(x_c.detach(), W, b_enc, b_dec, rows, cols, pre.detach(), mode, True,
                                  None)

    out = f(W, b_enc, b_dec)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (W, b_enc, b_dec), g)
    ref = torch.autograd.grad(((x - b_dec) @ W + b_enc)[rows, cols], (W, b_enc, b_dec), g)
    for a, b in zip(grads, ref):
        assert torch.allclose(a.double(), b, atol=1e-5)


def test_batch_topk_selection_equals_flat_topk() -> None:
    torch.manual_seed(0)
    pre = torch.randn(64, 100)
    n = 5 * 64
    for lower in (0.0, 0.5, 2.5, 10.0):  # the bound only changes speed, never the result
        sel = select_batch_topk(pre, n, lower_bound=lower)
        flat = pre.flatten().topk(n)
        expect = torch.zeros(pre.numel(), dtype=torch.bool)
        expect[flat.indices] = True
        got = torch.zeros(pre.numel(), dtype=torch.bool)
        got[sel.rows * 100 + sel.cols] = True
        assert torch.equal(got, expect)
        assert sel.tau == pytest.approx(float(flat.values.min()))


def test_selection_with_fewer_positives_than_k_keeps_all_positives() -> None:
    pre = -torch.ones(4, 10)
    pre[0, 3], pre[2, 7] = 0.5, 2.0
    sel = select_batch_topk(pre, 40)
    assert sel.rows.tolist() == [0, 2] and sel.cols.tolist() == [3, 7]
    assert sel.tau == pytest.approx(0.5)


def test_grouped_decode_prefix_sums_equal_dense_prefix_decodes() -> None:
    torch.manual_seed(0)
    W_dec = torch.randn(48, 12)
    z = torch.relu(torch.randn(9, 48)) * (torch.rand(9, 48) < 0.2)
    rows, cols = z.nonzero(as_tuple=True)
    codes = SparseCodes(rows, cols, z[rows, cols], 9, 48)
    for mode in ("sparse", "dense"):
        prefix = torch.stack(grouped_decode(codes, W_dec, WIDTHS, mode=mode), 1).cumsum(1)
        for g, w in enumerate(WIDTHS):
            assert torch.allclose(prefix[:, g], z[:, :w] @ W_dec[:w], atol=1e-5)
