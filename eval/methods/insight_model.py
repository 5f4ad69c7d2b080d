"""INSIGHT's aggregator (Zhang, Chen and Kanan, arXiv 2412.02012) on a grid of patch features.

- Detection module: small kernels (1 x 1, then ``detect_kernel`` x ``detect_kernel``) on the
  patch features -> a logit map per finding that fires on fine local evidence.
- Context module: a large receptive field (``context_kernel`` x ``context_kernel``, dilated) ->
  a logit map per finding that can veto local false positives with the surrounding anatomy.
- Fusion: the two logit maps add (their odds multiply); the heatmap is ``sigmoid(fused)``.
- SmoothMax pooling: ``(1 / r) log mean exp(r * fused)`` over the patches -> one image logit per
  finding (r -> 0: mean pooling, r -> inf: max pooling).
- Loss: binary cross-entropy on the image logits (image-level labels only) plus spectral
  decoupling, ``lambda * mean(logit ** 2)`` (Pezeshki et al. 2021), against gradient starvation.
- Location prior (an addition, not in the paper): :func:`location_prior`, per finding the mean
  detection logit map of the train studies that have it minus that of those that do not; a
  learned per-finding location bias from image labels only (no masks), added to the maps at
  a weight chosen on validation (:mod:`eval.methods.insight`).

The paper ships no code; the kernel sizes and the additive fusion are this implementation's
reading of it (docs/methods.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def smoothmax(logits: torch.Tensor, r: float) -> torch.Tensor:
    """SmoothMax of (B, F, H, W) maps over H, W -> (B, F): ``logsumexp(r z) / r - log(HW) / r``."""
    flat = logits.flatten(2)  # (B, F, HW)
    return (torch.logsumexp(r * flat, dim=-1) - math.log(flat.shape[-1])) / r


class InsightHead(nn.Module):
    """Detection + context modules over (B, n, n, d) patch features -> fused (B, F, n, n) logits."""

    def __init__(self, d: int, n_findings: int, hidden: int = 64, detect_kernel: int = 3,
                 context_kernel: int = 5, context_dilation: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(d))  # train-set feature standardisation
        self.register_buffer("std", torch.ones(d))
        self.detect = nn.Sequential(
            nn.Conv2d(d, hidden, 1), nn.GELU(), nn.Dropout2d(dropout),
            nn.Conv2d(hidden, n_findings, detect_kernel, padding=detect_kernel // 2),
        )
        pad = context_dilation * (context_kernel // 2)
        self.context = nn.Sequential(
            nn.Conv2d(d, hidden, 1), nn.GELU(), nn.Dropout2d(dropout),
            nn.Conv2d(hidden, hidden, context_kernel, padding=pad, dilation=context_dilation),
            nn.GELU(), nn.Conv2d(hidden, n_findings, 1),
        )

    def fit_standardisation(self, feats: torch.Tensor) -> None:
        """Per-channel mean / std of (N, n, n, d) training features."""
        flat = feats.reshape(-1, feats.shape[-1])
        self.mean.copy_(flat.mean(0))
        self.std.copy_(flat.std(0).clamp_min(1e-6))

    def modules_logits(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(detection, context) logit maps, each (B, F, n, n), of (B, n, n, d) features."""
        x = ((feats - self.mean) / self.std).permute(0, 3, 1, 2)  # (B, d, n, n)
        return self.detect(x), self.context(x)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        det, ctx = self.modules_logits(feats)
        return det + ctx  # (B, F, n, n) fused logits


def insight_loss(image_logits: torch.Tensor, labels: torch.Tensor, sd: float) -> torch.Tensor:
    """BCE on (B, F) image logits against (B, F) {0, 1} labels + ``sd`` * mean squared logit."""
    return F.binary_cross_entropy_with_logits(image_logits, labels) + sd * image_logits.pow(2).mean()


def location_prior(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(F, n, n) mean of (N, F, n, n) logit maps over the studies with each finding minus the
    mean over those without it ((N, F) {0, 1} labels); 0 for a finding missing either side."""
    pos = labels.to(logits.dtype)[..., None, None]  # (N, F, 1, 1)
    neg = 1 - pos
    n_pos, n_neg = pos.sum(0), neg.sum(0)  # (F, 1, 1)
    diff = (logits * pos).sum(0) / n_pos.clamp_min(1) - (logits * neg).sum(0) / n_neg.clamp_min(1)
    return torch.where((n_pos > 0) & (n_neg > 0), diff, torch.zeros_like(diff))


__all__ = ["InsightHead", "insight_loss", "location_prior", "smoothmax"]
