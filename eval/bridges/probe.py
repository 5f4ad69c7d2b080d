"""The linear-probe baseline of every association: the most a linear read-out of the layer holds.

Per target and scope, a probe on each study's mean residual over the scope's positions (the
positions the SAE features are max-pooled over) is fitted on the selection studies and scored
on the report studies, with the same permutation baseline as an SAE feature
(:func:`eval.bridges.associate.held_out` on the probe's score):

- 0/1 targets: :class:`eval.recovery.baselines.LinearProbe` (logistic regression on
  standardised residuals, L2 penalty ``l2``), the recovery issue's probe;
- continuous targets (CSR / INSIGHT scores): ridge regression on the same standardised
  residuals with the same penalty (mean squared error + ``l2`` * |w|^2, closed form).

A trained SAE feature near the probe reads out what the layer holds; far below it, the
dictionary did not isolate the target (the layer still holds it).
"""

from __future__ import annotations

import numpy as np
import torch

from eval.bridges.associate import held_out
from eval.recovery.baselines import LinearProbe


def ridge_scores(r_sel: np.ndarray, y_sel: np.ndarray, r_rep: np.ndarray, l2: float) -> np.ndarray:
    """(n_report,) ridge predictions: fitted on ``r_sel`` (n, d) standardised by its own mean and
    std, minimising mean((Zw + b - y)^2) + l2 |w|^2 (dual form, n <= d is cheap)."""
    mu, sd = r_sel.mean(0), r_sel.std(0).clip(min=1e-6)
    z = (r_sel - mu) / sd  # (n, d)
    yc = y_sel - y_sel.mean()
    n = len(y_sel)
    if n <= z.shape[1]:
        a = np.linalg.solve(z @ z.T / n + l2 * np.eye(n), yc / n)  # (n,)
        w = z.T @ a  # (d,)
    else:
        w = np.linalg.solve(z.T @ z / n + l2 * np.eye(z.shape[1]), z.T @ yc / n)
    return ((r_rep - mu) / sd) @ w + y_sel.mean()


def logistic_scores(r_sel: np.ndarray, y_sel: np.ndarray, r_rep: np.ndarray, l2: float) -> np.ndarray:
    """(n_report,) logits of :class:`LinearProbe` fitted on ``r_sel`` (n, d) and 0/1 ``y_sel``."""
    probe = LinearProbe(r_sel.shape[1], 1).fit(torch.from_numpy(r_sel).float(),
                                               torch.from_numpy(y_sel > 0.5).float()[:, None], l2=l2)
    with torch.no_grad():
        return probe.encode(torch.from_numpy(r_rep).float())[:, 0].numpy()


def probe_associate(r_sel: np.ndarray, y_sel: np.ndarray, r_rep: np.ndarray, y_rep: np.ndarray,
                    binary: bool, n_perm: int, seed: int, l2: float) -> dict:
    """The probe's report AUROC / Spearman with its permutation baseline (studies whose residual
    or value is NaN are left out), in the keys of :func:`eval.bridges.associate.associate`."""
    ks = np.isfinite(y_sel) & np.isfinite(r_sel).all(1)
    kr = np.isfinite(y_rep) & np.isfinite(r_rep).all(1)
    r_sel, y_sel, r_rep, y_rep = r_sel[ks], y_sel[ks], r_rep[kr], y_rep[kr]
    out: dict = {"n_select": int(len(y_sel)), "n_report": int(len(y_rep))}
    if binary:
        out["n_pos_select"], out["n_pos_report"] = int((y_sel > 0.5).sum()), int((y_rep > 0.5).sum())
        if min(out["n_pos_select"], out["n_pos_report"], len(y_sel) - out["n_pos_select"],
               len(y_rep) - out["n_pos_report"]) == 0:
            out["skipped"] = "one class only on the selection or report split"
            return out
    if len(y_sel) < 3 or len(y_rep) < 3 or np.ptp(y_sel) == 0:
        out["skipped"] = "too few studies or a constant target on a split"
        return out
    fit = logistic_scores if binary else ridge_scores
    score = fit(r_sel.astype(np.float64), y_sel, r_rep.astype(np.float64), l2)  # (n_report,)
    out.update(held_out(score[:, None], y_rep, 0, binary, n_perm, np.random.default_rng(seed)))
    return out


__all__ = ["logistic_scores", "probe_associate", "ridge_scores"]
