"""Classification metrics the methods share, on top of :mod:`radinterp.metrics`."""

from __future__ import annotations

import numpy as np

from radinterp.metrics import auroc


def auroc_per_finding(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUROC of column f of ``scores`` (N, F) against column f of ``labels`` (N, F) -> (F,);
    NaN where a column holds one class only."""
    s, y = np.asarray(scores), np.asarray(labels, bool)
    if s.shape != y.shape or s.ndim != 2:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must both be (N, F); align them")
    return np.array([auroc(y[:, j], s[:, j]) for j in range(s.shape[1])])


__all__ = ["auroc_per_finding"]
