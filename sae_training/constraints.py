"""The unit-norm decoder constraint: project gradients before each step, renormalise after.

Decoder rows ``W_dec[i]`` stay unit vectors, so a latent's activation is its contribution's
norm and the L1/L0 trade-off cannot be gamed by shrinking codes and growing rows.
"""

from __future__ import annotations

import torch

from radinterp.sae import SparseAutoencoder


@torch.no_grad()
def normalize_decoder(sae: SparseAutoencoder) -> None:
    """Rescale the decoder rows (d_sae, d_in) to unit norm."""
    sae.W_dec.div_(sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))


@torch.no_grad()
def project_decoder_grad(sae: SparseAutoencoder) -> None:
    """Remove the gradient component parallel to each (unit) decoder row."""
    g = sae.W_dec.grad  # (d_sae, d_in) or None
    if g is None:
        return
    W = sae.W_dec / sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    g.sub_((g * W).sum(dim=1, keepdim=True) * W)
