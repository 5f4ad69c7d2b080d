"""Feature-to-target association: selection on one split, every reported number on another.

For a target (one value per study) and an encoder's study summaries (N, d_sae):

- association of every feature: AUROC for a 0/1 target, Spearman rank correlation for a
  continuous one (and Spearman for both, so the two kinds sit on one scale in the matching);
- the *best* feature is chosen on the selection studies; its AUROC / Spearman are measured on
  the report studies, beside a permutation baseline (the report split's values shuffled
  ``n_permutations`` times: null mean, 95th percentile, p-value);
- the one-to-one matching (Hungarian, :func:`match_targets`) pairs the targets of one source
  with distinct features by selection-split agreement (Spearman; for 0/1 targets
  2 * AUROC - 1, Somers' D); its agreement is then measured on the report split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from radinterp.metrics import auroc_columns


def report_split(ids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(selection ids, report ids): ``ids`` sorted by a seeded SHA-256 of the id, the first
    ``fraction`` reported; disjoint by construction, independent of listing order."""
    key = (lambda s: hashlib.sha256(f"bridge:{seed}:{s}".encode()).hexdigest())
    order = sorted(set(ids), key=key)
    n_rep = min(max(1, round(fraction * len(order))), len(order) - 1) if len(order) > 1 else len(order)
    return sorted(order[n_rep:]), sorted(order[:n_rep])


def spearman_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman correlation of every column of ``x`` (n, m) with ``y`` (n,) -> (m,); NaN for a
    constant column (or constant ``y``)."""
    from scipy.stats import rankdata

    rx = rankdata(x, axis=0)  # (n, m)
    ry = rankdata(y)
    rx = rx - rx.mean(0)
    ry = ry - ry.mean()
    den = np.sqrt((rx ** 2).sum(0) * (ry ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry[:, None]).sum(0) / np.where(den > 0, den, 1), np.nan)


def agreement(x: np.ndarray, y: np.ndarray, binary: bool) -> np.ndarray:
    """(m,) association on one scale in [-1, 1]: 2 * AUROC - 1 (0/1 ``y``) or Spearman."""
    return 2 * auroc_columns(x, y > 0.5) - 1 if binary else spearman_columns(x, y)


def _finite(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.isfinite(y) & np.isfinite(x).all(1)


def held_out(x: np.ndarray, y: np.ndarray, feature: int, binary: bool, n_perm: int,
             rng: np.random.Generator) -> dict:
    """AUROC (0/1 targets) and Spearman of ``feature`` on report rows ``x`` (n, d_sae) with the
    permutation baseline of the headline number (AUROC, else Spearman)."""
    col = x[:, [feature]]
    sp = float(spearman_columns(col, y)[0])
    au = float(auroc_columns(col, y > 0.5)[0]) if binary else None
    head = au if binary else sp
    null = np.empty(n_perm)
    for i in range(n_perm):
        yp = rng.permutation(y)
        null[i] = auroc_columns(col, yp > 0.5)[0] if binary else spearman_columns(col, yp)[0]
    null = null[np.isfinite(null)]
    ok = head is not None and np.isfinite(head) and null.size
    fin = (lambda v: None if v is None or not np.isfinite(v) else v)
    au, sp = fin(au), fin(sp)
    return {"auroc": au, "spearman": sp,
            "perm_mean": float(null.mean()) if null.size else None,
            "perm_q95": float(np.quantile(null, 0.95)) if null.size else None,
            "p_perm": float((1 + (null >= head).sum()) / (1 + null.size)) if ok else None}


def best_feature(xs: np.ndarray, ys: np.ndarray, binary: bool) -> tuple[int | None, float | None]:
    """(feature, selection association) maximising AUROC / Spearman on selection rows."""
    a = agreement(xs, ys, binary)
    if not np.isfinite(a).any():
        return None, None
    j = int(np.nanargmax(a))
    return j, float((a[j] + 1) / 2 if binary else a[j])


def associate(x_sel: np.ndarray, y_sel: np.ndarray, x_rep: np.ndarray, y_rep: np.ndarray,
              binary: bool, n_perm: int, seed: int) -> dict:
    """The best feature on selection, scored on report, with its permutation baseline."""
    ks, kr = _finite(x_sel, y_sel), _finite(x_rep, y_rep)
    x_sel, y_sel, x_rep, y_rep = x_sel[ks], y_sel[ks], x_rep[kr], y_rep[kr]
    out = {"n_select": int(len(y_sel)), "n_report": int(len(y_rep))}
    if binary:
        out["n_pos_select"], out["n_pos_report"] = int((y_sel > 0.5).sum()), int((y_rep > 0.5).sum())
    if binary and min(out["n_pos_select"], out["n_pos_report"], len(y_sel) - out["n_pos_select"],
                      len(y_rep) - out["n_pos_report"]) == 0:
        out["feature"], out["select"] = None, None
        out["skipped"] = "one class only on the selection or report split"
        return out
    j, sel = best_feature(x_sel, y_sel, binary) if len(y_sel) >= 3 else (None, None)
    out["feature"], out["select"] = j, sel
    if j is None or len(y_rep) < 3:
        out["skipped"] = "too few studies or one class only on a split"
        return out
    out.update(held_out(x_rep, y_rep, j, binary, n_perm, np.random.default_rng(seed)))
    return out


def match_targets(x_sel: np.ndarray, ys_sel: list[np.ndarray], x_rep: np.ndarray,
                  ys_rep: list[np.ndarray], binary: Sequence[bool], n_perm: int = 100,
                  seed: int = 0) -> list[dict]:
    """Hungarian one-to-one matching of targets (selection values ``ys_sel``) to distinct
    features by selection agreement; per target the feature, its report agreement and that
    agreement's permutation baseline (report values shuffled ``n_perm`` times: mean, 95th
    percentile). Studies whose value is NaN are left out per target."""
    from scipy.optimize import linear_sum_assignment

    if not ys_sel:
        return []
    a = np.full((len(ys_sel), x_sel.shape[1]), -1.0)
    for t, (y, b) in enumerate(zip(ys_sel, binary, strict=True)):
        k = _finite(x_sel, y)
        if k.sum() >= 3:
            a[t] = np.nan_to_num(agreement(x_sel[k], y[k], b), nan=-1.0)
    rows, cols = linear_sum_assignment(a, maximize=True)
    rng = np.random.default_rng(seed)
    out = []
    for t, j in zip(rows.tolist(), cols.tolist(), strict=True):
        k = _finite(x_rep, ys_rep[t])
        col, y = x_rep[k][:, [j]], ys_rep[t][k]
        rep = float(agreement(col, y, binary[t])[0]) if k.sum() >= 3 else float("nan")
        null = np.array([agreement(col, rng.permutation(y), binary[t])[0] for _ in range(n_perm)]
                        if k.sum() >= 3 else [])
        null = null[np.isfinite(null)]
        out.append({"target": t, "feature": int(j), "select": float(a[t, j]),
                    "report": None if not np.isfinite(rep) else rep, "n_report": int(k.sum()),
                    "perm_mean": float(null.mean()) if null.size else None,
                    "perm_q95": float(np.quantile(null, 0.95)) if null.size else None})
    return out


def benjamini_hochberg(p: Sequence[float | None]) -> list[float | None]:
    """BH-adjusted q-values of ``p`` (None stays None)."""
    idx = [i for i, v in enumerate(p) if v is not None and np.isfinite(v)]
    q: list[float | None] = [None] * len(p)
    if not idx:
        return q
    vals = np.array([p[i] for i in idx], dtype=np.float64)
    order = np.argsort(vals)
    m = len(vals)
    adj = vals[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(adj[::-1])[::-1].clip(max=1.0)
    for rank, o in enumerate(order):
        q[idx[o]] = float(adj[rank])
    return q


__all__ = ["agreement", "associate", "benjamini_hochberg", "best_feature", "held_out",
           "match_targets", "report_split", "spearman_columns"]
