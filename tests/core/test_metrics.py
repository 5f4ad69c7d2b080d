"""radinterp.metrics: F1 against sklearn and by hand, the undefined cases, AUROC against the
pairwise definition with ties, the column form, and the F1-maximising threshold."""

from __future__ import annotations

import numpy as np
import pytest

from radinterp.metrics import (
    auroc,
    auroc_columns,
    best_f1_threshold,
    confusion_counts,
    f1_columns,
    f1_score,
    mean_defined,
    precision_recall_f1,
)


def _pairwise_auroc(y: np.ndarray, s: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = s[y.astype(bool)], s[~y.astype(bool)]
    return float(np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg]))


def test_f1_by_hand_and_undefined_cases():
    y = np.array([1, 1, 1, 0, 0, 0])
    p = np.array([1, 0, 0, 1, 1, 0])
    assert confusion_counts(y, p) == (1, 2, 2)
    prec, rec, f1 = precision_recall_f1(1, 2, 2)
    assert (prec, rec) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert f1 == pytest.approx(1 / 3) and f1_score(y, p) == pytest.approx(1 / 3)
    # nothing positive on either side: F1 is undefined, not 0 and not 1
    assert f1_score(np.zeros(4), np.zeros(4)) is None
    assert precision_recall_f1(0, 0, 0) == (None, None, None)
    # no prediction: precision undefined, recall 0, F1 defined and 0
    assert precision_recall_f1(0, 0, 3) == (None, 0.0, 0.0)
    # no true positive: recall undefined, precision 0, F1 0
    assert precision_recall_f1(0, 2, 0) == (0.0, None, 0.0)
    with pytest.raises(ValueError, match="align"):
        confusion_counts(np.zeros(3), np.zeros(4))


def test_f1_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for n in (1, 5, 40, 300):
        for rate in (0.05, 0.3, 0.7):
            y, p = rng.random(n) < rate, rng.random(n) < rate
            tp, fp, fn = confusion_counts(y, p)
            prec, rec, f1 = precision_recall_f1(tp, fp, fn)
            if tp + fp + fn == 0:
                assert f1 is None
                continue
            assert f1 == pytest.approx(sk.f1_score(y, p, zero_division=0.0))
            if prec is not None:
                assert prec == pytest.approx(sk.precision_score(y, p))
            if rec is not None:
                assert rec == pytest.approx(sk.recall_score(y, p))


def test_auroc_matches_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    for n in (4, 17, 60):
        y = rng.random(n) < 0.4
        y[:2] = [True, False]  # both classes present
        s = np.round(rng.random(n) + 0.4 * y, 1)  # one decimal: many ties, across classes too
        assert auroc(y, s) == pytest.approx(_pairwise_auroc(y, s))
    y = np.array([1, 1, 0, 0])
    assert auroc(y, np.array([0.9, 0.8, 0.1, 0.2])) == 1.0
    assert auroc(y, np.array([0.1, 0.2, 0.9, 0.8])) == 0.0
    assert auroc(y, np.ones(4)) == 0.5  # all tied: chance


def test_auroc_single_class_is_nan():
    assert np.isnan(auroc(np.ones(3), np.arange(3.0)))
    assert np.isnan(auroc(np.zeros(3), np.arange(3.0)))
    assert np.isnan(auroc_columns(np.zeros((3, 2)), np.zeros(3))).all()


def test_auroc_columns_is_auroc_per_column():
    rng = np.random.default_rng(2)
    y = rng.random(40) < 0.3
    scores = np.stack([y + rng.normal(0, 0.1, 40), np.round(rng.normal(size=40), 0),
                       -y.astype(float)], 1)  # (40, 3)
    auc = auroc_columns(scores, y)
    assert auc.shape == (3,) and auc[0] == 1.0 and auc[2] == 0.0
    np.testing.assert_allclose(auc, [_pairwise_auroc(y, s) for s in scores.T])
    np.testing.assert_allclose(auc, [auroc(y, s) for s in scores.T])
    with pytest.raises(ValueError, match=r"\(n, m\)"):
        auroc_columns(scores[:, 0], y)


def test_auroc_matches_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    y = rng.random(200) < 0.25
    s = np.round(rng.random(200) + 0.3 * y, 2)
    assert auroc(y, s) == pytest.approx(sk.roc_auc_score(y, s))


def test_mean_defined_skips_undefined():
    assert mean_defined([0.5, None, 1.0, float("nan")]) == pytest.approx(0.75)
    assert mean_defined([None, float("nan")]) is None and mean_defined([]) is None


def test_best_f1_threshold_is_the_f1_maximiser_over_every_cut():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.2
    score = np.round(y * 0.6 + rng.random(300), 2)  # rounded: many ties
    t = best_f1_threshold(y, score)
    brute = max(f1_score(y, score >= c) for c in np.unique(score))
    assert f1_score(y, score >= t) == pytest.approx(brute)
    assert best_f1_threshold([False, True, True], [0.1, 0.5, 0.9]) == 0.5


def test_f1_columns_agree_with_f1_score_and_mark_undefined_nan():
    rng = np.random.default_rng(3)
    fires = rng.random((40, 6)) < 0.3
    fires[:, 5] = False
    y = rng.random(40) < 0.4
    got = f1_columns(fires, y)
    assert np.allclose(got, [f1_score(y, fires[:, j]) for j in range(6)])
    assert np.isnan(f1_columns(np.zeros((5, 2), bool), np.zeros(5, bool))).all()
    with pytest.raises(ValueError, match="fires must be"):
        f1_columns(fires[:, 0], y)
