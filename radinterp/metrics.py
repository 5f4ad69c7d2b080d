"""Classification metrics shared by every stage: precision / recall / F1, balanced accuracy
and AUROC.

Undefined values, one convention per kind of metric:

- Count metrics (precision, recall, F1, balanced accuracy) return ``None`` where the ratio is 0 / 0: precision
  with no predicted positive, recall with no true positive, F1 with neither (tp + fp + fn = 0).
  ``None`` is JSON ``null`` in the result files; callers skip it when averaging and print it
  as "-" and average with :func:`mean_defined`. F1 is never undefined when anything is positive on either side (then it is
  2 tp / (2 tp + fp + fn), 0.0 when tp = 0).
- AUROC returns ``NaN`` where only one class is present, so that a column of AUROCs stays a
  float array (``np.nanmax`` / ``np.isnan`` skip it). Tied scores count half (average ranks,
  the Mann-Whitney U statistic).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int]:
    """(tp, fp, fn) of binary labels and predictions (anything truthy is positive)."""
    y, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    if y.shape != p.shape:
        raise ValueError(f"y_true has shape {y.shape} but y_pred {p.shape}; align them by sample")
    return int((y & p).sum()), int((~y & p).sum()), int((y & ~p).sum())


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """Precision, recall and F1 of the positive class from counts; ``None`` where undefined."""
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return precision, recall, f1


def f1_score(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Binary F1; ``None`` when there are no positives and none are predicted."""
    return precision_recall_f1(*confusion_counts(y_true, y_pred))[2]


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float | None:
    """Mean of the true-positive and true-negative rates; ``None`` unless both classes occur
    in ``y_true``."""
    y, p = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    if y.shape != p.shape:
        raise ValueError(f"y_true has shape {y.shape} but y_pred {p.shape}; align them by sample")
    if y.all() or not y.any():
        return None
    return float((p[y].mean() + (~p[~y]).mean()) / 2)


def f1_columns(fires: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    """Binary F1 of every column of ``fires`` (n, m) against ``y_true`` (n,) -> (m,) float; NaN
    where undefined (no positive on either side), as a float array like :func:`auroc_columns`."""
    fires, y = np.asarray(fires).astype(bool), np.asarray(y_true).astype(bool)
    if fires.ndim != 2 or y.shape != (fires.shape[0],):
        raise ValueError(f"fires must be (n, m) and y_true (n,); got {fires.shape} and {y.shape}")
    tp = fires[y].sum(0).astype(np.float64)  # (m,)
    fp = fires[~y].sum(0).astype(np.float64)
    den = 2 * tp + fp + (y.sum() - tp)
    return np.divide(2 * tp, den, out=np.full_like(tp, np.nan), where=den > 0)


def mean_defined(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are defined (not None, not NaN); None when none is."""
    kept = [float(v) for v in values if v is not None and v == v]
    return sum(kept) / len(kept) if kept else None


def auroc_columns(scores: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    """AUROC of every column of ``scores`` (n, m) against binary ``y_true`` (n,) -> (m,) float;
    all NaN when ``y_true`` holds one class only."""
    scores = np.asarray(scores)
    pos = np.asarray(y_true).astype(bool)
    if scores.ndim != 2 or pos.shape != (scores.shape[0],):
        raise ValueError(f"scores must be (n, m) and y_true (n,); got {scores.shape} and {pos.shape}")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(scores.shape[1], np.nan)
    from scipy.stats import rankdata  # here: importing scipy.stats takes seconds

    ranks = rankdata(scores, axis=0)  # (n, m), ties get their average rank
    return (ranks[pos].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve of one score; NaN when only one class is present."""
    return float(auroc_columns(np.asarray(score).reshape(-1, 1), y_true)[0])


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
