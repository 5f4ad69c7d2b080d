"""The Matryoshka BatchTopK loss, computed from sparse codes.

Loss = sum over Matryoshka prefixes of the prefix reconstruction MSE (sum over d_in, mean
over tokens; the sae-lens convention) + ``aux_k_coef`` * the auxiliary-k loss, in which the
top ``aux_k`` dead latents of each token reconstruct the (detached) residual of the full
SAE, scaled by ``min(n_dead / aux_k, 1)``. Prefix reconstructions are ``b_dec`` plus a
cumulative sum of per-group sparse decodes, never a B x d_sae dense decode.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from radinterp.sae import SparseAutoencoder
from sae_training.batchtopk import LOCAL, Collectives, encode_batchtopk, gather_preacts
from sae_training.kernels import decode_rows, grouped_decode


class _PrefixSSE(torch.autograd.Function):
    """Squared errors of the nested reconstructions ``b_dec + parts[0] + ... + parts[g]``.

    Returns (G,) sums of squares over tokens and d_in, and the full-SAE residual (B, d_in,
    no grad). The backward is written out (suffix sums
    of the residuals) so each group costs two passes over (B, d_in) instead of autograd's six.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: torch.Tensor, b_dec: torch.Tensor, *parts: torch.Tensor
    ):
        with torch.autocast(x.device.type, enabled=False):  # sums of squares stay float32
            err = x.float() - b_dec.float()  # (B, d_in)
            errs, sse = [], []
            for part in parts:
                err = err - part.float()
                errs.append(err)
                sse.append(torch.dot(err.view(-1), err.view(-1)))
        ctx.save_for_backward(*errs)
        ctx.part_dtypes = [p.dtype for p in parts]
        last = err.detach().clone()
        ctx.mark_non_differentiable(last)
        return torch.stack(sse), last

    @staticmethod
    def backward(ctx: Any, g_sse: torch.Tensor, _g_last: Any):  # type: ignore[override]
        errs = ctx.saved_tensors
        weights = g_sse.tolist()
        suffix = torch.zeros_like(errs[0])
        grads: list[torch.Tensor | None] = [None] * len(errs)
        for h in range(len(errs) - 1, -1, -1):  # d sse_g / d part_h = -2 err_g for g >= h
            suffix.add_(errs[h], alpha=weights[h])
            grads[h] = (suffix * -2.0).to(ctx.part_dtypes[h])
        grad_b_dec = suffix.sum(0) * -2.0
        return (None, grad_b_dec, *grads)


class MatryoshkaObjective(nn.Module):
    """Wraps the SAE so that one ``forward`` is one training loss (DDP wraps this module)."""

    def __init__(
        self,
        sae: SparseAutoencoder,
        *,
        aux_k_coef: float = 1.0,
        aux_k: int | None = None,
        mode: str = "sparse",
        mm_dtype: torch.dtype | None = None,
        collectives: Collectives = LOCAL,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        self.sae = sae
        self.aux_k_coef = aux_k_coef
        self.aux_k = aux_k if aux_k is not None else max(1, sae.d_in // 2)
        self.mode = mode
        self.mm_dtype = mm_dtype
        self.collectives = collectives
        self.world_size = world_size

    def forward(
        self, x: torch.Tensor, dead_mask: torch.Tensor | None = None, lower_bound: float = 0.0
    ) -> dict[str, Any]:
        sae = self.sae
        B = x.shape[0]
        enc = encode_batchtopk(
            sae, x, lower_bound=lower_bound, mode=self.mode, mm_dtype=self.mm_dtype,
            collectives=self.collectives, batch_global=B * self.world_size,
        )
        # G tensors (B, d_in): the decode of each Matryoshka group's selected latents
        partial = grouped_decode(enc.codes, sae.W_dec, sae.cfg.widths, mode=self.mode)
        sse_t, residual = _PrefixSSE.apply(x, sae.b_dec, *partial)  # (G,), (B, d_in)
        loss = sse_t.sum() / B
        recon = x - residual  # (B, d_in), full reconstruction, no grad
        aux = self._aux_loss(x, recon, enc, dead_mask)
        if aux is not None:
            loss = loss + aux
        return {
            "loss": loss,
            "sse": sse_t.detach(),
            "aux_loss": aux.detach() if aux is not None else None,
            "cols": enc.codes.cols,
            "tau": enc.tau,
            "n_selected": enc.n_selected,
            "recon": recon,
        }

    def _aux_loss(
        self, x: torch.Tensor, recon: torch.Tensor, enc: Any, dead_mask: torch.Tensor | None
    ) -> torch.Tensor | None:
        if dead_mask is None or self.aux_k_coef == 0:
            return None
        dead_idx = dead_mask.nonzero().squeeze(1)  # (n_dead,)
        n_dead = int(dead_idx.numel())
        if n_dead == 0:
            return None
        B = x.shape[0]
        k_aux = min(self.aux_k, n_dead)
        pre_dead = enc.pre_mm[:, dead_idx] + self.sae.b_enc.detach()[dead_idx]  # (B, n_dead)
        top = pre_dead.topk(k_aux, dim=1)  # (B, k_aux)
        cols = dead_idx[top.indices]  # (B, k_aux)
        rows = torch.arange(B, device=x.device).unsqueeze(1).expand(B, k_aux)
        vals = gather_preacts(
            self.sae, enc.x_c, rows.reshape(-1), cols.reshape(-1), top.values.reshape(-1),
            mode=self.mode, mm_dtype=self.mm_dtype,
        ).view(B, k_aux)
        recon_aux = decode_rows(cols, vals, self.sae.W_dec, mode=self.mode)  # (B, d_in)
        residual = (x - recon).detach()
        scale = min(n_dead / self.aux_k, 1.0)
        return self.aux_k_coef * scale * (recon_aux.float() - residual).pow(2).sum(-1).mean()
