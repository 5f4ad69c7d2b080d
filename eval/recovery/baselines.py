"""Baselines for every stage that uses an SAE: what a dictionary scores by chance, and the most
the layer holds.

- :class:`RandomSAE` (:mod:`radinterp.sae.baselines`, shared with autointerp): an SAE of the same shape and the same sparsity as a trained one, with
  random unit-norm decoder rows, an encoder equal to their transpose (or independent random
  directions), the data mean as ``b_dec``, and either a per-token top-k (a random top-k
  encoder) or one global threshold, set so its mean L0 on the given activations equals the
  trained SAE's. :func:`random_like` builds it.
- :func:`shuffled_encoder`: the trained decoder kept, every encoder column's entries permuted
  (the same weight statistics, no learned direction), threshold re-matched to the same L0.
- :class:`LinearProbe`: logistic regression per finding on mean-pooled residuals (the most a
  linear read-out of the layer holds); ``encode`` gives per-token logits.

All expose ``encode(x) -> (B, n_latents)`` like :class:`radinterp.sae.SparseAutoencoder`, and
``d_sae``, so the recovery metrics score them exactly as they score the trained SAE.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

from radinterp.sae.baselines import RandomSAE, as_rows, match_sparsity, mean_l0

log = logging.getLogger(__name__)


@torch.no_grad()
def shuffled_encoder(sae, acts: torch.Tensor | Iterable[torch.Tensor], *,
                     target_l0: float | None = None, mode: str = "threshold",
                     seed: int = 0) -> RandomSAE:
    """The trained decoder and biases, each encoder column's entries permuted, same L0."""
    x = as_rows(acts)
    if target_l0 is None:
        target_l0 = mean_l0(sae, x)
    g = torch.Generator().manual_seed(seed)
    W = sae.W_enc.detach().float()  # (d_in, d_sae)
    perm = torch.argsort(torch.rand(W.shape, generator=g), dim=0)  # (d_in, d_sae)
    model = RandomSAE(torch.gather(W, 0, perm), sae.W_dec.detach(), sae.b_dec.detach(),
                      mode=mode, b_enc=sae.b_enc.detach())
    return match_sparsity(model, x, target_l0)


class LinearProbe(nn.Module):
    """Logistic regression per finding on mean-pooled residuals; ``encode`` = per-token logits.

    The logit of a study's mean residual equals the mean of its per-token logits (linear), so
    the study score is the mean of ``encode`` over the study's positions.
    """

    def __init__(self, d_in: int, n_out: int) -> None:
        super().__init__()
        self.W_enc = nn.Parameter(torch.zeros(d_in, n_out))  # (d_in, F)
        self.b_enc = nn.Parameter(torch.zeros(n_out))  # (F,)
        self.register_buffer("mu", torch.zeros(d_in))
        self.register_buffer("sigma", torch.ones(d_in))

    @property
    def d_sae(self) -> int:
        return int(self.W_enc.shape[1])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mu) / self.sigma) @ self.W_enc + self.b_enc  # (B, F)

    def fit(self, X: torch.Tensor, Y: torch.Tensor, *, l2: float = 1e-2, steps: int = 200) -> LinearProbe:
        """Fit on study features ``X`` (n, d_in) and 0/1 labels ``Y`` (n, F), standardised,
        with an L2 penalty ``l2`` on the weights (LBFGS, full batch)."""
        if X.shape[0] != Y.shape[0] or Y.shape[1] != self.d_sae:
            raise ValueError(f"X {tuple(X.shape)} and Y {tuple(Y.shape)} do not match the probe "
                             f"({self.d_sae} outputs); pass one label column per finding")
        X, Y = X.float(), Y.float()
        with torch.no_grad():
            self.mu.copy_(X.mean(0))
            self.sigma.copy_(X.std(0).clamp_min(1e-6))
        opt = torch.optim.LBFGS([self.W_enc, self.b_enc], lr=1.0, max_iter=steps,
                                line_search_fn="strong_wolfe")
        Z = (X - self.mu) / self.sigma  # (n, d_in)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(Z @ self.W_enc + self.b_enc, Y)
            loss = loss + l2 * self.W_enc.pow(2).sum() / Y.shape[1]
            loss.backward()
            return loss

        opt.step(closure)
        return self
