"""Token filters for capture: the core registry ``TOKEN_FILTERS`` (radinterp.models.tokens)
decides which positions are written; the forward runs once for all sites whatever the filter."""

from __future__ import annotations

import numpy as np

from radinterp.models.tokens import TOKEN_FILTERS, TokenLayout

__all__ = ["TOKEN_FILTERS", "apply_filter"]


def apply_filter(name: str, layout: TokenLayout) -> np.ndarray:
    """Positions (int64 indices) of ``layout`` kept by filter ``name``."""
    return np.nonzero(TOKEN_FILTERS.get(name)(layout))[0]
