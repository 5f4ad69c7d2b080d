"""Random baselines of a trained SAE: what a dictionary of its shape and sparsity scores by
chance (autointerp scores of random models are known to look deceptively good).

:class:`RandomSAE` has random unit-norm decoder rows, an encoder equal to their transpose (or
independent random directions), the data mean as ``b_dec``, and either a per-token top-k or
one global threshold set so its mean L0 on the given activations equals the trained SAE's;
:func:`random_like` builds it. ``encode(x) -> (B, d_sae)`` like
:class:`radinterp.sae.SparseAutoencoder`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

log = logging.getLogger(__name__)

SPARSITY_MODES = ("topk", "threshold")
"""How a baseline is made as sparse as the trained SAE: per-token top-k, or one threshold."""


@torch.no_grad()
def mean_l0(encoder, acts: torch.Tensor, chunk_rows: int = 4096) -> float:
    """Mean number of non-zero codes per row of ``acts`` (N, d_in) under ``encoder.encode``."""
    if acts.shape[0] == 0:
        raise ValueError("mean_l0 needs at least one activation row; pass a non-empty (N, d_in)")
    nnz = 0
    for lo in range(0, acts.shape[0], chunk_rows):
        nnz += int((encoder.encode(acts[lo:lo + chunk_rows]) > 0).sum())  # codes (n, d_sae)
    return nnz / acts.shape[0]


@torch.no_grad()
def threshold_for_l0(pre: torch.Tensor, target_l0: float) -> float:
    """The scalar t such that ``(pre > t).sum(1).mean()`` is ``target_l0`` (pre: (N, d_sae)).

    ``t`` is the ``N * target_l0``-th largest pre-activation, floored at 0 (codes are ReLU'd).
    """
    n_keep = int(round(target_l0 * pre.shape[0]))
    if n_keep <= 0:
        return float("inf")
    if n_keep >= pre.numel():
        return 0.0
    flat = pre.reshape(-1)
    # kthvalue of the negated values: the n_keep-th largest
    kth = -torch.kthvalue(-flat, n_keep).values
    return max(float(kth) - 1e-7 * max(abs(float(kth)), 1.0), 0.0)


class RandomSAE(nn.Module):
    """A random dictionary of a trained SAE's shape; ``encode`` matches its sparsity.

    ``pre = (x - b_dec) @ W_enc``; ``mode="topk"`` keeps each row's ``k`` largest positive
    entries, ``mode="threshold"`` keeps the entries above ``threshold`` (one scalar).
    """

    def __init__(self, W_enc: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor, *,
                 mode: str = "topk", k: int = 16, threshold: float = 0.0,
                 b_enc: torch.Tensor | None = None) -> None:
        super().__init__()
        if mode not in SPARSITY_MODES:
            raise ValueError(f"mode must be one of {SPARSITY_MODES}, got {mode!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}; pass the trained SAE's mean L0")
        self.mode, self.k, self.threshold = mode, int(k), float(threshold)
        self.register_buffer("W_enc", W_enc.float())  # (d_in, d_sae)
        self.register_buffer("W_dec", W_dec.float())  # (d_sae, d_in)
        self.register_buffer("b_dec", b_dec.float())  # (d_in,)
        self.register_buffer("b_enc", torch.zeros(W_enc.shape[1]) if b_enc is None else b_enc.float())

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[0])

    def preacts(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.b_dec) @ self.W_enc + self.b_enc  # (B, d_sae)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (B, d_sae): top-k per row or thresholded, ReLU'd."""
        pre = self.preacts(x)  # (B, d_sae)
        if self.mode == "threshold":
            return pre.relu() * (pre > self.threshold).to(pre.dtype)
        vals, idx = pre.topk(min(self.k, self.d_sae), dim=-1)  # (B, k)
        return torch.zeros_like(pre).scatter_(-1, idx, vals.relu())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.float() @ self.W_dec + self.b_dec  # (B, d_in)


def as_rows(acts: torch.Tensor | Iterable[torch.Tensor]) -> torch.Tensor:
    """``acts`` as one float32 (N, d_in) tensor (a tensor, or chunks of rows)."""
    return acts.float() if isinstance(acts, torch.Tensor) else torch.cat([a.float() for a in acts])


@torch.no_grad()
def match_sparsity(model: RandomSAE, acts: torch.Tensor, target_l0: float) -> RandomSAE:
    """Set ``model``'s top-k (rounded L0) or threshold so its mean L0 on ``acts`` is ``target_l0``."""
    if model.mode == "topk":
        model.k = max(1, int(round(target_l0)))
    else:
        model.threshold = threshold_for_l0(model.preacts(acts), target_l0)
    return model


@torch.no_grad()
def random_like(sae, acts: torch.Tensor | Iterable[torch.Tensor], *, target_l0: float | None = None,
                mode: str = "topk", encoder: str = "transpose", seed: int = 0) -> RandomSAE:
    """A random SAE with ``sae``'s shape whose mean L0 on ``acts`` equals the trained one's.

    ``acts`` (N, d_in): activations the SAE is scored on (their mean becomes ``b_dec``);
    ``target_l0``: None measures ``sae``'s own mean L0 on ``acts``; ``encoder``: ``transpose``
    (encoder = decoder transpose) or ``random`` (independent unit-norm directions).
    """
    if encoder not in ("transpose", "random"):
        raise ValueError(f"encoder must be 'transpose' or 'random', got {encoder!r}")
    x = as_rows(acts)  # (N, d_in)
    if target_l0 is None:
        target_l0 = mean_l0(sae, x)
    g = torch.Generator().manual_seed(seed)
    W_dec = torch.randn(sae.d_sae, sae.d_in, generator=g)  # (d_sae, d_in)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    if encoder == "transpose":
        W_enc = W_dec.t().clone()
    else:
        W_enc = torch.randn(sae.d_in, sae.d_sae, generator=g)
        W_enc /= W_enc.norm(dim=0, keepdim=True)
    model = RandomSAE(W_enc, W_dec, x.mean(0), mode=mode)
    match_sparsity(model, x, target_l0)
    log.info("random SAE (%s, %s): d_sae %d, target L0 %.2f, measured %.2f", mode, encoder,
             model.d_sae, target_l0, mean_l0(model, x))
    return model


__all__ = ["SPARSITY_MODES", "RandomSAE", "as_rows", "match_sparsity", "mean_l0",
           "random_like", "threshold_for_l0"]
