"""Exact BatchTopK selection, optionally over a batch split across processes.

BatchTopK keeps the ``n = k * B_global`` largest positive pre-activations of the whole
(global) batch. Rather than a flat ``topk`` over ``B * d_sae`` values (slow on CPU and
impossible across ranks without gathering everything), we:

1. keep the candidates above a lower bound ``lo`` (the previous step's threshold, shrunk),
   lowering it until the global candidate count reaches ``n``;
2. find the exact global threshold ``tau`` (the ``n``-th largest candidate) from each
   rank's top ``n`` candidates (one ``all_gather``);
3. select the local entries ``>= tau``.

The result depends only on the global batch, never on how it is split across ranks or on
``lo``; this is what makes a 2-process run match a 1-process run.

:func:`encode_batchtopk` is the training-time encode of a ``SparseAutoencoder``: the dense
encoder matmul, this selection, and differentiable values of the selected entries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from radinterp.sae import SparseAutoencoder
from sae_training.kernels import SparseCodes, encoder_matmul, gather_encode


@dataclasses.dataclass
class Collectives:
    """The two reductions the selection needs; the defaults are single-process."""

    sum_int: Callable[[int], int] = lambda v: v
    """Sum an integer over ranks."""
    gather_values: Callable[[torch.Tensor], torch.Tensor] = lambda t: t
    """Concatenate 1-D float tensors (of possibly different lengths) from all ranks."""


LOCAL = Collectives()


@dataclasses.dataclass
class Selection:
    """Result of one BatchTopK selection."""

    rows: torch.Tensor
    """(nnz,) int64 row of each selected entry, sorted by (row, col)."""
    cols: torch.Tensor
    """(nnz,) int64 latent of each selected entry."""
    pre_vals: torch.Tensor
    """(nnz,) float32 pre-activation of each selected entry (all > 0)."""
    tau: float
    """Global threshold: smallest selected pre-activation (0 if fewer than n were positive)."""
    n_selected_global: int
    """Entries selected over all ranks (``k * B_global`` barring exact ties)."""

    def codes(self, vals: torch.Tensor, batch: int, d_sae: int) -> SparseCodes:
        return SparseCodes(self.rows, self.cols, vals, batch, d_sae)


@torch.no_grad()
def select_batch_topk(
    pre: torch.Tensor,
    n_global: int,
    *,
    bias: torch.Tensor | None = None,
    lower_bound: float = 0.0,
    collectives: Collectives = LOCAL,
) -> Selection:
    """Select the ``n_global`` largest positive entries of ``pre + bias`` over the global batch.

    ``pre`` is this rank's (B, d_sae) float32 matmul output and ``bias`` (d_sae,) the encoder
    bias (added only where needed). ``lower_bound`` only affects speed: candidates are entries
    above it, and it is lowered (halved, then 0) until at least ``n_global`` candidates exist
    over all ranks.
    """
    B, d_sae = pre.shape
    flat_pre = pre.reshape(-1)  # (B * d_sae,)
    bias = torch.zeros(d_sae, dtype=pre.dtype, device=pre.device) if bias is None else bias.float()
    lo = max(float(lower_bound), 0.0)
    while True:
        mask = pre > (lo - bias)  # (B, d_sae)
        flat_idx = torch.nonzero(mask.view(-1)).squeeze(1)  # sorted, (C,)
        count = collectives.sum_int(int(flat_idx.numel()))
        if count >= n_global or lo == 0.0:
            break
        lo = lo * 0.5 if lo > 1e-6 else 0.0
    rows = torch.div(flat_idx, d_sae, rounding_mode="floor")
    cols = flat_idx - rows * d_sae
    cand = flat_pre[flat_idx] + bias[cols]  # (C,)
    if count > n_global:
        local_top = cand.topk(min(n_global, cand.numel()), sorted=False).values
        everyone = collectives.gather_values(local_top.float())
        tau = float(everyone.topk(n_global, sorted=False).values.min())
        keep = cand >= tau
        rows, cols, cand = rows[keep], cols[keep], cand[keep]
        n_sel = collectives.sum_int(int(rows.numel()))
    else:
        n_sel = count
        mins = collectives.gather_values(cand.min().reshape(1) if cand.numel() else cand)
        tau = float(mins.min()) if mins.numel() else 0.0
    return Selection(rows, cols, cand.float(), tau, n_sel)


@dataclasses.dataclass
class BatchTopKOutput:
    """Result of :func:`encode_batchtopk`."""

    codes: SparseCodes
    """Selected latents with differentiable values."""
    pre_mm: torch.Tensor
    """(B, d_sae) float32 ``x_c @ W_enc`` without ``b_enc``, no grad (the aux-k loss reads
    dead latents here)."""
    x_c: torch.Tensor
    """(B, d_in) encoder input (``x - b_dec`` when ``apply_b_dec_to_input``), no grad."""
    tau: float
    """Global BatchTopK threshold of this batch."""
    n_selected: int
    """Entries selected over all ranks."""


def encode_batchtopk(
    sae: SparseAutoencoder,
    x: torch.Tensor,
    *,
    lower_bound: float = 0.0,
    mode: str = "sparse",
    mm_dtype: torch.dtype | None = None,
    collectives: Collectives = LOCAL,
    batch_global: int | None = None,
) -> BatchTopKOutput:
    """BatchTopK codes of ``x`` (B, d_in) as sparse entries, differentiable.

    ``batch_global`` is the batch over all ranks (``collectives`` reduce over them); the
    selection keeps ``k * batch_global`` entries of the global batch.
    """
    B = x.shape[0]
    x_c = x - sae.b_dec.detach() if sae.cfg.apply_b_dec_to_input else x  # (B, d_in)
    pre_mm = encoder_matmul(x_c, sae.W_enc, mm_dtype)  # (B, d_sae), no b_enc
    n_global = sae.cfg.k_int * (batch_global if batch_global is not None else B)
    sel = select_batch_topk(pre_mm, n_global, bias=sae.b_enc.detach(),
                            lower_bound=lower_bound, collectives=collectives)
    vals = gather_preacts(sae, x_c, sel.rows, sel.cols, sel.pre_vals, mode=mode,
                          mm_dtype=mm_dtype)  # (nnz,)
    return BatchTopKOutput(sel.codes(vals, B, sae.d_sae), pre_mm, x_c, sel.tau,
                           sel.n_selected_global)


def gather_preacts(
    sae: SparseAutoencoder, x_c: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
    pre_vals: torch.Tensor, *, mode: str = "sparse", mm_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Differentiable pre-activations (nnz,) of ``sae`` at (rows, cols), from ``pre_vals``."""
    return gather_encode(
        x_c, sae.W_enc, sae.b_enc, sae.b_dec, rows, cols, pre_vals,
        mode=mode, apply_b_dec=sae.cfg.apply_b_dec_to_input, mm_dtype=mm_dtype,
    )
