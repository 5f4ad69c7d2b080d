"""Concepts: k-sparse probing of report labels on SAE latents, and feature absorption.

Each study is one example: its latents' mean code over the study's rows (SAEBench's
mean-pooled k-sparse probing). Studies are split in two halves (``split_studies``: a seeded
permutation of the sorted ids). On the selection half, the ``k`` latents with the largest
difference of class means (standardised) are chosen and a logistic regression is fitted on
them; the held-out half is scored (AUROC and accuracy). ``k = 1, 2, 5``.

Absorption (how many latents split one label between them): among latents that fire on the
selection half mostly where the label holds (precision >= ``min_precision``), latents are
picked greedily by how many not-yet-covered positive held-out studies they add; each pick
must add at least ``min_gain`` of the positives. ``n_split`` is how many were picked; above 1,
the label is carried by several latents firing on different studies (absorbed or split),
``coverage`` is the held-out recall of their union.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from radinterp.labels import is_positive, label_report
from radinterp.metrics import auroc

log = logging.getLogger(__name__)

K_VALUES = (1, 2, 5)


def study_labels(studies) -> dict[str, dict[str, int]]:
    """Study id -> labels (the study's own, else the rule labeler on its report)."""
    return {s.study_id: (dict(s.labels) if s.labels else label_report(s.report or ""))
            for s in studies}


def label_matrix(ids: list[str], labels: dict[str, dict[str, int]], min_each: int
                 ) -> tuple[list[str], np.ndarray]:
    """(names, Y (n_studies, n_labels) bool) of labels with >= ``min_each`` positives and
    negatives; a study is positive when the one policy (``is_positive``) says so."""
    names = sorted({k for lab in labels.values() for k in lab} - {"No Finding"})
    cols, kept = [], []
    for name in names:
        y = np.array([is_positive(labels.get(i, {}), name) for i in ids], bool)
        if min(y.sum(), (~y).sum()) >= min_each:
            cols.append(y)
            kept.append(name)
    return kept, (np.stack(cols, 1) if cols else np.zeros((len(ids), 0), bool))


def _fit_score(X_sel: np.ndarray, y_sel: np.ndarray, X_held: np.ndarray, y_held: np.ndarray
               ) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X_sel)
    clf = LogisticRegression(max_iter=1000).fit(scaler.transform(X_sel), y_sel)
    score = clf.decision_function(scaler.transform(X_held))
    acc = float(((score > 0) == y_held).mean())
    return auroc(y_held, score), acc


def k_sparse_probe(Z: np.ndarray, y: np.ndarray, sel: np.ndarray, held: np.ndarray,
                   ks=K_VALUES) -> dict[str, Any]:
    """Held-out AUROC / accuracy of a logistic probe on the top-k latents (chosen on ``sel``)."""
    zs, ys = Z[sel], y[sel]
    diff = zs[ys].mean(0) - zs[~ys].mean(0)
    spread = zs.std(0) + 1e-8
    order = np.argsort(-np.abs(diff) / spread)
    out = {}
    for k in ks:
        top = order[:k]
        a, acc = _fit_score(zs[:, top], ys, Z[held][:, top], y[held])
        out[str(k)] = {"auroc": a, "accuracy": acc, "latents": [int(i) for i in top]}
    return out


def absorption(Z: np.ndarray, y: np.ndarray, sel: np.ndarray, held: np.ndarray, *,
               min_precision: float = 0.8, min_gain: float = 0.1, max_latents: int = 10
               ) -> dict[str, Any]:
    """How many latents the label is split over (see the module docstring)."""
    fires_sel, fires_held = Z[sel] > 0, Z[held] > 0
    ys, yh = y[sel], y[held]
    n_fire = fires_sel.sum(0)
    prec = np.where(n_fire > 0, (fires_sel & ys[:, None]).sum(0) / np.maximum(n_fire, 1), 0.0)
    cand = np.nonzero(prec >= min_precision)[0]
    covered = np.zeros(yh.shape[0], bool)
    picked = []
    n_pos = max(int(yh.sum()), 1)
    while cand.size and len(picked) < max_latents:
        gains = (fires_held[:, cand] & yh[:, None] & ~covered[:, None]).sum(0)
        best = int(np.argmax(gains))
        if gains[best] / n_pos < min_gain:
            break
        picked.append(int(cand[best]))
        covered |= fires_held[:, cand[best]] & yh
        cand = np.delete(cand, best)
    return {"n_split": len(picked), "latents": picked, "coverage": float(covered.sum() / n_pos)}


def probe_concepts(encoders: dict[str, np.ndarray], ids: list[str], labels: dict[str, dict[str, int]],
                   *, min_each: int = 4, seed: int = 0) -> dict[str, Any]:
    """k-sparse probing and absorption per label for each encoder's per-study codes
    (name -> (n_studies, d_sae) mean codes, rows in ``ids`` order)."""
    from eval.recovery.metrics import split_studies

    sel, held = split_studies(ids, seed=seed)
    names, Y = label_matrix(ids, labels, min_each)
    keep = [j for j in range(len(names))
            if min(Y[sel, j].sum(), (~Y[sel, j]).sum(), Y[held, j].sum(), (~Y[held, j]).sum()) >= 1]
    out: dict[str, Any] = {"studies": len(ids), "selection": int(sel.size), "held_out": int(held.size),
                           "labels": {}, "mean": {}}
    for j in keep:
        y = Y[:, j]
        row: dict[str, Any] = {"positives": int(y.sum())}
        for enc, Z in encoders.items():
            row[enc] = {"k_sparse": k_sparse_probe(Z, y, sel, held),
                        "absorption": absorption(Z, y, sel, held)}
        out["labels"][names[j]] = row
    for enc in encoders:
        rows = [r[enc] for r in out["labels"].values()]
        if rows:
            out["mean"][enc] = {
                **{f"auroc_k{k}": float(np.mean([r["k_sparse"][str(k)]["auroc"] for r in rows]))
                   for k in K_VALUES},
                "n_split_mean": float(np.mean([r["absorption"]["n_split"] for r in rows])),
                "labels_split": int(sum(r["absorption"]["n_split"] > 1 for r in rows)),
            }
    return out


__all__ = ["K_VALUES", "absorption", "k_sparse_probe", "label_matrix", "probe_concepts", "study_labels"]
