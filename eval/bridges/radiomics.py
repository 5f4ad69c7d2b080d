"""SAE features vs radiomic features: which per-cell radiomic features each SAE feature tracks.

The radiomics run (``radinterp method radiomics``) writes, per test study, the *usage* of every
kept radiomic feature (name ``<region>.<cell>.<feature>``): the fingerprint model's weight on
it for that study; it is in the study's fingerprint when usage > the usage threshold. Over the
report-split studies, every SAE feature that fires on at least ``min_active`` of them is
rank-correlated with every radiomic feature; p-values (t approximation of Spearman's rho) are
corrected with Benjamini-Hochberg over all pairs. Reported: the significant pairs per SAE
feature (strongest first) with how often the radiomic feature is in the fingerprint, and the
same count for the random SAE (the baseline).
"""

from __future__ import annotations

import numpy as np

from eval.bridges.associate import benjamini_hochberg


def spearman_matrix(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(m, r) Spearman of columns of ``x`` (n, m) with columns of ``u`` (n, r); NaN if constant."""
    from scipy.stats import rankdata

    def z(a: np.ndarray) -> np.ndarray:
        r = rankdata(a, axis=0)
        r = r - r.mean(0)
        n = np.sqrt((r ** 2).sum(0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, r / np.where(n > 0, n, 1), np.nan)

    return z(x).T @ z(u)  # (m, r)


def rho_pvalues(rho: np.ndarray, n: int) -> np.ndarray:
    """Two-sided p-values of Spearman ``rho`` over ``n`` studies (t with n - 2 dof)."""
    from scipy.stats import t

    r = np.clip(rho, -0.999999, 0.999999)
    stat = r * np.sqrt((n - 2) / (1 - r ** 2))
    return 2 * t.sf(np.abs(stat), n - 2)


def radiomic_correlations(x: np.ndarray, usage: np.ndarray, names: list[str], fdr: float,
                          usage_threshold: float, min_active: int = 3, top: int = 5) -> dict:
    """Significant (BH q < ``fdr``) SAE feature x radiomic feature correlations over the studies
    of ``x`` (n, d_sae; SAE image-scope maxima) and ``usage`` (n, r)."""
    n = x.shape[0]
    active = np.flatnonzero((x > 0).sum(0) >= min_active)
    varied = np.flatnonzero(np.ptp(usage, axis=0) > 0)
    out = {"n_studies": int(n), "n_sae_features_tested": int(active.size),
           "n_radiomic_features_tested": int(varied.size), "fdr": fdr}
    if n < 4 or not active.size or not varied.size:
        out.update(n_tests=0, n_significant=0, features={}, skipped="too few studies or nothing varies")
        return out
    rho = spearman_matrix(x[:, active], usage[:, varied])  # (a, v)
    p = np.nan_to_num(rho_pvalues(np.nan_to_num(rho), n), nan=1.0)
    q = np.array(benjamini_hochberg(p.ravel().tolist()), dtype=np.float64).reshape(p.shape)
    in_print = (usage[:, varied] > usage_threshold).mean(0)  # (v,)
    sig = q < fdr
    feats = {}
    for a in np.flatnonzero(sig.any(1)):
        cols = np.flatnonzero(sig[a])
        cols = cols[np.argsort(-np.abs(rho[a, cols]))][:top]
        feats[str(int(active[a]))] = [
            {"radiomic": names[int(varied[c])], "rho": float(rho[a, c]), "q": float(q[a, c]),
             "fingerprint_share": float(in_print[c])} for c in cols]
    out.update(n_tests=int(p.size), n_significant=int(sig.sum()),
               n_sae_features_with_any=int(sig.any(1).sum()), features=feats)
    return out


__all__ = ["radiomic_correlations", "rho_pvalues", "spearman_matrix"]
