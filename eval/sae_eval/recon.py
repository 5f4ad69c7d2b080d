"""Reconstruction and sparsity of an SAE on activation rows, streamed, per token kind.

SAEBench / SAELens ``run_evals`` core metrics: MSE, explained variance (also of every
Matryoshka prefix: the reconstruction from latents ``[0, w)`` only), cosine similarity and L2
ratio of reconstruction to input, L0, latent firing counts (dead: never fire; dense: fire on
more than 10% of rows; the log10 frequency histogram) and decoder-direction similarity.
Definitions follow ``sae_training.calibrate`` (explained variance = 1 - SSE / total variance
of the rows; MSE = mean over rows of the squared error summed over ``d_in``), so eval and
training report comparable numbers.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

DENSE_FREQ = 0.1
"""A latent firing on more than this share of rows is dense."""


class ReconStats:
    """Running sums for one group of rows (overall, or one token kind)."""

    def __init__(self, d_in: int, widths: list[int]) -> None:
        self.widths = list(widths)
        self.rows = 0
        self.sum_x = torch.zeros(d_in, dtype=torch.float64)
        self.sum_sq = 0.0
        self.sse = [0.0] * len(self.widths)  # per prefix; the last is the full SAE
        self.cos = 0.0
        self.l2_ratio = 0.0
        self.active = 0

    @torch.no_grad()
    def add(self, x: torch.Tensor, z: torch.Tensor, W_dec: torch.Tensor, b_dec: torch.Tensor) -> None:
        """Rows ``x`` (n, d_in) and their codes ``z`` (n, d_sae)."""
        if x.shape[0] == 0:
            return
        x64 = x.double()
        self.rows += x.shape[0]
        self.sum_x += x64.sum(0)
        self.sum_sq += float(x64.pow(2).sum())
        part = b_dec.expand_as(x).clone()  # (n, d_in) the running prefix reconstruction
        lo = 0
        for i, w in enumerate(self.widths):
            part += z[:, lo:w] @ W_dec[lo:w]
            lo = w
            self.sse[i] += float((x - part).pow(2).sum())
        x_hat = part  # (n, d_in) the full reconstruction
        nx, nh = x.norm(dim=1), x_hat.norm(dim=1)
        self.cos += float(torch.nn.functional.cosine_similarity(x, x_hat, dim=1).sum())
        self.l2_ratio += float((nh / nx.clamp_min(1e-12)).sum())
        self.active += int((z != 0).sum())

    def result(self) -> dict[str, Any]:
        if self.rows == 0:
            return {"rows": 0}
        total = self.sum_sq - float(self.sum_x.pow(2).sum()) / self.rows
        ev = [1.0 - s / max(total, 1e-12) for s in self.sse]
        return {
            "rows": self.rows,
            "mse": self.sse[-1] / self.rows,
            "explained_variance": ev[-1],
            "explained_variance_prefix": {str(w): e for w, e in zip(self.widths, ev)},
            "cosine": self.cos / self.rows,
            "l2_ratio": self.l2_ratio / self.rows,
            "l0": self.active / self.rows,
        }


class FiringStats:
    """How often each latent fires over all rows."""

    def __init__(self, d_sae: int) -> None:
        self.counts = torch.zeros(d_sae, dtype=torch.long)
        self.rows = 0

    def add(self, z: torch.Tensor) -> None:
        self.counts += (z != 0).sum(0)
        self.rows += z.shape[0]

    def result(self, bins: int = 30) -> dict[str, Any]:
        freq = self.counts.double() / max(self.rows, 1)  # (d_sae,)
        alive = freq[freq > 0]
        lo = math.floor(math.log10(1.0 / max(self.rows, 1)))
        edges = np.linspace(lo, 0.0, bins + 1)
        hist = np.histogram(np.log10(alive.numpy()), bins=edges)[0] if alive.numel() else np.zeros(bins)
        return {
            "d_sae": int(freq.numel()),
            "dead": int((freq == 0).sum()),
            "dead_fraction": float((freq == 0).double().mean()),
            "dense": int((freq > DENSE_FREQ).sum()),
            "dense_fraction": float((freq > DENSE_FREQ).double().mean()),
            "log10_freq_hist": {"edges": edges.round(4).tolist(), "counts": [int(c) for c in hist]},
        }


@torch.no_grad()
def decoder_similarity(W_dec: torch.Tensor, chunk: int = 4096, bins: int = 20) -> dict[str, Any]:
    """Each decoder direction's largest |cosine| with any other direction (d_sae rows)."""
    W = torch.nn.functional.normalize(W_dec.float(), dim=1)  # (d_sae, d_in)
    best = torch.empty(W.shape[0])
    for lo in range(0, W.shape[0], chunk):
        sim = (W[lo:lo + chunk] @ W.t()).abs()  # (c, d_sae)
        idx = torch.arange(lo, min(lo + chunk, W.shape[0]))
        sim[torch.arange(idx.numel()), idx] = 0.0
        best[idx] = sim.max(dim=1).values
    hist = np.histogram(best.numpy(), bins=np.linspace(0, 1, bins + 1))[0]
    return {
        "max_abs_cos_mean": float(best.mean()),
        "max_abs_cos_median": float(best.median()),
        "fraction_above_0.9": float((best > 0.9).double().mean()),
        "max_abs_cos_hist": {"edges": np.linspace(0, 1, bins + 1).round(3).tolist(),
                             "counts": [int(c) for c in hist]},
    }


class GroupedRecon:
    """Reconstruction stats overall and per token kind, plus latent firing, for one encoder."""

    def __init__(self, encoder, widths: list[int], kind_names: dict[int, str]) -> None:
        self.encoder = encoder
        self.widths = widths
        self.kind_names = kind_names
        self.overall = ReconStats(encoder.d_in, widths)
        self.by_kind: dict[str, ReconStats] = {}
        self.firing = FiringStats(encoder.d_sae)

    @torch.no_grad()
    def add(self, x: torch.Tensor, kinds: np.ndarray) -> None:
        """Rows ``x`` (n, d_in) with their token kinds (n,)."""
        z = self.encoder.encode(x).float()  # (n, d_sae)
        W_dec, b_dec = self.encoder.W_dec.float(), self.encoder.b_dec.float()
        self.overall.add(x, z, W_dec, b_dec)
        self.firing.add(z)
        for k in np.unique(kinds):
            name = self.kind_names.get(int(k), str(int(k)))
            sel = torch.from_numpy(kinds == k)
            stats = self.by_kind.setdefault(name, ReconStats(self.encoder.d_in, self.widths))
            stats.add(x[sel], z[sel], W_dec, b_dec)

    def result(self) -> dict[str, Any]:
        return {"overall": self.overall.result(),
                "by_kind": {k: v.result() for k, v in sorted(self.by_kind.items())},
                "firing": self.firing.result(),
                "decoder_similarity": decoder_similarity(self.encoder.W_dec)}


__all__ = ["DENSE_FREQ", "FiringStats", "GroupedRecon", "ReconStats", "decoder_similarity"]
