"""Small classification metrics (no sklearn dependency)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U); NaN when only one class is present."""
    y = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def f1_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Binary F1; 1.0 when there are no positives and none are predicted."""
    y, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    tp, fp, fn = int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())
    if tp + fp + fn == 0:
        return 1.0
    return 2 * tp / (2 * tp + fp + fn)


def best_f1_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score threshold (predict ``score >= t``) with the highest F1 on these labels.

    Every distinct score is a candidate; ties go to the highest threshold. Pick it on one split
    and apply it to another to read how well ``score`` alone would answer there."""
    y, s = np.asarray(y_true).astype(bool), np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s_sorted, tp = s[order], np.cumsum(y[order])
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]  # last index of each distinct score
    k = np.arange(1, len(s) + 1)[last]  # predicted positives at each candidate threshold
    f1 = 2 * tp[last] / (k + y.sum())
    return float(s_sorted[last][int(np.argmax(f1))])
