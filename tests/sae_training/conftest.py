"""Synthetic activations with known sparse structure (no model needed)."""

from __future__ import annotations

import pytest
import torch


def sparse_activations(n: int = 4096, d_in: int = 16, n_features: int = 48, seed: int = 0,
                       density: float = 0.08) -> torch.Tensor:
    """Rows are sparse non-negative mixtures of unit feature directions + noise + offset."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_features, d_in, generator=gen)
    dirs /= dirs.norm(dim=1, keepdim=True)
    mask = torch.rand(n, n_features, generator=gen) < density
    mags = torch.rand(n, n_features, generator=gen) * 2 + 0.5
    noise = 0.02 * torch.randn(n, d_in, generator=gen)
    return (mask * mags) @ dirs + noise + 1.5  # (n, d_in)


@pytest.fixture
def acts() -> torch.Tensor:
    return sparse_activations()
