"""Sparse kernels for BatchTopK SAEs: only the encoder forward is a dense matmul.

A BatchTopK step keeps ``k * B`` of the ``B * d_sae`` pre-activations. Everything after the
selection touches only those entries, held as sorted COO triples ``(rows, cols, vals)``:

- :class:`GatherEncode` returns the selected pre-activations and, in backward, builds the
  encoder gradients from the selected entries only (``W_enc`` via an ``embedding_bag`` over
  the entries grouped by latent, ``b_enc`` via ``index_add``, ``b_dec`` as ``-W_enc @ g_b_enc``).
- :func:`grouped_decode` decodes the codes of each Matryoshka group with an ``embedding_bag``
  (bags = rows); prefix reconstructions are running sums over groups, so no ``B x d_sae``
  dense code or decode is materialised. Its backward gives the value gradients (the
  ``embedding_bag`` per-sample-weight kernel) and the ``W_dec`` gradient (only rows of
  selected latents are non-zero) from the selected entries only.

``mode="dense"`` computes the same quantities with dense matmuls (faster where matmul FLOPs
are cheap and gathers are bandwidth bound, e.g. some GPUs); both agree to float tolerance.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torch.nn.functional as F

KERNEL_MODES = ("sparse", "dense")


@dataclasses.dataclass
class SparseCodes:
    """Selected latents of a batch as COO entries sorted by (row, col)."""

    rows: torch.Tensor
    """(nnz,) int64 row (token) index of each entry."""
    cols: torch.Tensor
    """(nnz,) int64 latent index of each entry."""
    vals: torch.Tensor
    """(nnz,) float activation of each entry (differentiable during training)."""
    batch: int
    """Number of rows B."""
    d_sae: int
    """Number of latents."""

    def to_dense(self) -> torch.Tensor:
        out = torch.zeros(self.batch, self.d_sae, dtype=self.vals.dtype, device=self.vals.device)
        return out.index_put((self.rows, self.cols), self.vals)  # (B, d_sae)


def encoder_matmul(
    x_c: torch.Tensor, W_enc: torch.Tensor, mm_dtype: torch.dtype | None
) -> torch.Tensor:
    """Dense ``x_c @ W_enc`` in float32, shape (B, d_sae), without ``b_enc``.

    The bias is added only to the entries that are kept (adding it densely costs a full extra
    pass over B x d_sae). With ``mm_dtype=torch.bfloat16`` the matmul runs in bf16 with a
    float32 output where the backend supports it (CUDA), so BatchTopK selection does not see
    bf16 rounding ties.
    """
    with torch.no_grad():
        if mm_dtype is None or mm_dtype == torch.float32:
            return x_c.float() @ W_enc.float()
        a, b = x_c.to(mm_dtype), W_enc.to(mm_dtype)
        try:
            return torch.mm(a, b, out_dtype=torch.float32)
        except (RuntimeError, TypeError, NotImplementedError):
            return (a @ b).float()


def _latent_offsets(cols_sorted: torch.Tensor, d_sae: int) -> torch.Tensor:
    return torch.searchsorted(cols_sorted, torch.arange(d_sae, device=cols_sorted.device))


def scatter_rows_to_latents(
    rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor, src: torch.Tensor, d_sae: int
) -> torch.Tensor:
    """``out[c] = sum_{e: cols[e]=c} weights[e] * src[rows[e]]``, shape (d_sae, src.shape[1]).

    The transpose of a sparse decode, computed as an ``embedding_bag`` over the entries
    grouped by latent, so no (nnz, d) gathered tensor is materialised.
    """
    order = torch.argsort(cols, stable=True)
    cols_sorted = cols[order]
    offsets = _latent_offsets(cols_sorted, d_sae)
    return F.embedding_bag(
        rows[order], src, offsets, mode="sum", per_sample_weights=weights[order].to(src.dtype)
    )


class GatherEncode(torch.autograd.Function):
    """Selected pre-activations ``(x - b_dec) @ W_enc + b_enc`` at (rows, cols).

    Forward returns ``pre_vals`` (already computed by the dense encoder matmul); backward
    returns gradients for ``W_enc`` (d_in, d_sae), ``b_enc`` and ``b_dec`` built from the
    selected entries only.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x_c: torch.Tensor,
        W_enc: torch.Tensor,
        b_enc: torch.Tensor,
        b_dec: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        pre_vals: torch.Tensor,
        mode: str,
        apply_b_dec: bool,
        mm_dtype: torch.dtype | None,
    ) -> torch.Tensor:
        ctx.save_for_backward(x_c, W_enc, rows, cols)
        ctx.mode = mode
        ctx.apply_b_dec = apply_b_dec
        ctx.mm_dtype = mm_dtype
        return pre_vals.detach().clone()

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor):  # type: ignore[override]
        x_c, W_enc, rows, cols = ctx.saved_tensors
        d_in, d_sae = W_enc.shape
        g = g.float()
        grad_b_enc = torch.zeros(d_sae, dtype=torch.float32, device=g.device).index_add_(
            0, cols, g
        )
        grad_W_enc = None
        if ctx.needs_input_grad[1]:
            if ctx.mode == "dense":
                G = torch.zeros(x_c.shape[0], d_sae, dtype=torch.float32, device=g.device)
                G.index_put_((rows, cols), g, accumulate=True)  # (B, d_sae)
                dt = ctx.mm_dtype or torch.float32
                grad_W_enc = (x_c.to(dt).t() @ G.to(dt)).float()  # (d_in, d_sae)
            else:
                gWT = scatter_rows_to_latents(rows, cols, g, x_c.float(), d_sae)  # (d_sae, d_in)
                grad_W_enc = gWT.t().contiguous()  # (d_in, d_sae)
        grad_b_dec = None
        if ctx.apply_b_dec and ctx.needs_input_grad[3]:
            grad_b_dec = -(W_enc.float() @ grad_b_enc)  # (d_in,)
        return None, grad_W_enc, grad_b_enc, grad_b_dec, None, None, None, None, None, None


def gather_encode(
    x_c: torch.Tensor,
    W_enc: torch.Tensor,
    b_enc: torch.Tensor,
    b_dec: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    pre_vals: torch.Tensor,
    *,
    mode: str = "sparse",
    apply_b_dec: bool = True,
    mm_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Differentiable selected pre-activations (nnz,); see :class:`GatherEncode`.

    ``mm_dtype`` is the dtype of the dense backward matmul (``mode="dense"``), e.g. bf16.
    """
    if mode not in KERNEL_MODES:
        raise ValueError(f"unknown kernel mode {mode!r}; valid: {', '.join(KERNEL_MODES)}")
    return GatherEncode.apply(x_c, W_enc, b_enc, b_dec, rows, cols, pre_vals, mode, apply_b_dec,
                              mm_dtype)


class _MatryoshkaDecode(torch.autograd.Function):
    """Per-group sparse decodes; backward builds the ``W_dec`` gradient group by group.

    Forward runs one ``embedding_bag`` per Matryoshka group over that group's entries (bags =
    rows). Backward computes the value gradients with the ``embedding_bag`` per-sample-weight
    kernel and the ``W_dec`` rows of each group with :func:`scatter_rows_to_latents`, so no
    (B, G, d_in) stack and no dense ``W_dec`` backward over all bags is needed.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, vals, W_dec, rows, cols, bounds: tuple[int, ...], batch: int
    ):
        d_sae = W_dec.shape[0]
        edges = torch.tensor(bounds[1:-1], dtype=cols.dtype, device=cols.device)
        group = torch.bucketize(cols, edges, right=True)  # (nnz,)
        order = torch.argsort(group, stable=True)  # rows stay sorted within a group
        counts = torch.bincount(group, minlength=len(bounds) - 1).tolist()
        arange_b = torch.arange(batch, device=cols.device)
        segs, outs, start = [], [], 0
        for n in counts:
            seg = order[start:start + n]
            start += n
            r, c, v = rows[seg], cols[seg], vals[seg].to(W_dec.dtype)
            offsets = torch.searchsorted(r, arange_b)
            out, offset2bag, _, _ = torch.ops.aten._embedding_bag(
                W_dec, c, offsets, False, 0, False, v, False, -1)
            segs.append((seg, r, c, v, offsets, offset2bag))
            outs.append(out)  # (B, d_in)
        ctx.segs, ctx.bounds, ctx.nnz, ctx.d_sae = segs, bounds, vals.shape[0], d_sae
        ctx.save_for_backward(W_dec)
        ctx.vals_dtype = vals.dtype
        return tuple(outs)

    @staticmethod
    def backward(ctx: Any, *grads):  # type: ignore[override]
        (W_dec,) = ctx.saved_tensors
        grad_vals = torch.zeros(ctx.nnz, dtype=ctx.vals_dtype, device=W_dec.device)
        grad_W = torch.zeros_like(W_dec)
        for g, (seg, r, c, v, offsets, offset2bag) in enumerate(ctx.segs):
            gr = grads[g]
            if gr is None or seg.numel() == 0:
                continue
            gr = gr.contiguous().to(W_dec.dtype)
            gv = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                gr, W_dec, c, offsets, offset2bag, 0, -1)
            grad_vals[seg] = gv.to(grad_vals.dtype)
            lo, hi = ctx.bounds[g], ctx.bounds[g + 1]
            grad_W[lo:hi] = scatter_rows_to_latents(r, c - lo, v, gr, hi - lo)
        return grad_vals, grad_W, None, None, None, None


def grouped_decode(
    codes: SparseCodes, W_dec: torch.Tensor, widths: list[int], *, mode: str = "sparse"
) -> list[torch.Tensor]:
    """Partial decodes per Matryoshka group, G tensors of shape (B, d_in), without ``b_dec``.

    Group ``g`` holds latents ``[widths[g-1], widths[g])``; the reconstruction of prefix
    ``g`` is ``b_dec + sum(partial[:g+1])``.
    """
    if mode == "dense":
        Z = codes.to_dense()  # (B, d_sae)
        parts, start = [], 0
        for w in widths:
            parts.append(Z[:, start:w] @ W_dec[start:w])  # (B, d_in)
            start = w
        return parts
    if mode != "sparse":
        raise ValueError(f"unknown kernel mode {mode!r}; valid: {', '.join(KERNEL_MODES)}")
    bounds = (0, *widths)
    return list(_MatryoshkaDecode.apply(codes.vals, W_dec, codes.rows, codes.cols, bounds,
                                        codes.batch))


def decode_rows(
    idx: torch.Tensor, vals: torch.Tensor, W_dec: torch.Tensor, *, mode: str = "sparse"
) -> torch.Tensor:
    """Decode a fixed number of latents per row: ``sum_j vals[b, j] * W_dec[idx[b, j]]``.

    ``idx`` and ``vals`` are (B, m); returns (B, d_in) without ``b_dec``.
    """
    if mode == "dense":
        Z = torch.zeros(idx.shape[0], W_dec.shape[0], dtype=vals.dtype, device=vals.device)
        Z = Z.scatter(1, idx, vals)  # (B, d_sae)
        return Z @ W_dec
    return F.embedding_bag(idx, W_dec, mode="sum", per_sample_weights=vals.to(W_dec.dtype))
