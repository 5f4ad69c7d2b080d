"""The linear-probe baseline of every association: the most a linear read-out of the layer holds.

Per target and scope, a probe on each study's residual pooled over the scope's positions (the
positions the SAE features are max-pooled over; mean-pooled as the recovery issue's probe, and
max-pooled as the SAE features' study scores) is fitted on the selection studies and scored
on the report studies, with the same permutation baseline as an SAE feature
(:func:`eval.bridges.associate.held_out` on the probe's score):

- 0/1 targets: :class:`eval.recovery.baselines.LinearProbe` (logistic regression on
  standardised residuals, L2 penalty ``l2``), the recovery issue's probe; the 0/1 targets of
  one scope are fitted jointly (:func:`joint_binary_scores`: the objective is a sum over
  columns, so each column's optimum is that of its own fit);
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
    """(n_report,) or (n_report, F) logits of :class:`LinearProbe` fitted on ``r_sel`` (n, d)
    and 0/1 ``y_sel`` (n,) or (n, F) (one column per target)."""
    y = np.asarray(y_sel)
    Y = torch.from_numpy((y > 0.5).reshape(len(y), -1)).float()  # (n, F)
    probe = LinearProbe(r_sel.shape[1], Y.shape[1]).fit(torch.from_numpy(r_sel).float(), Y, l2=l2)
    with torch.no_grad():
        z = probe.encode(torch.from_numpy(r_rep).float()).numpy().astype(np.float64)  # (n_rep, F)
    return z[:, 0] if y.ndim == 1 else z


def probe_associate(r_sel: np.ndarray, y_sel: np.ndarray, r_rep: np.ndarray, y_rep: np.ndarray,
                    binary: bool, n_perm: int, seed: int, l2: float,
                    score: np.ndarray | None = None) -> dict:
    """The probe's report AUROC / Spearman with its permutation baseline (studies whose residual
    or value is NaN are left out), in the keys of :func:`eval.bridges.associate.associate`.
    ``score`` (len(r_rep),): the probe's report scores when fitted already (jointly)."""
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
    if score is None:
        fit = logistic_scores if binary else ridge_scores
        score = fit(r_sel.astype(np.float64), y_sel, r_rep.astype(np.float64), l2)  # (n_report,)
    else:
        score = np.asarray(score, np.float64)[kr]
    out.update(held_out(score[:, None], y_rep, 0, binary, n_perm, np.random.default_rng(seed)))
    return out


def joint_binary_scores(r_sel: np.ndarray, ys_sel: list[np.ndarray], r_rep: np.ndarray,
                        l2: float) -> list[np.ndarray | None]:
    """(len(r_rep),) report logits per 0/1 target of one joint :class:`LinearProbe` over the
    targets ``ys_sel`` defined on every selection study with a residual; None for the others
    (:func:`probe_associate` fits those on their own)."""
    ok = np.isfinite(r_sel).all(1)  # (n_sel,)
    out: list[np.ndarray | None] = [None] * len(ys_sel)
    if ok.sum() < 3:  # e.g. report positions of studies without reports
        return out
    cols = [i for i, y in enumerate(ys_sel) if np.isfinite(y[ok]).all() and np.ptp(y[ok]) > 0]
    if not cols:
        return out
    Y = np.stack([ys_sel[i][ok] for i in cols], 1)  # (n_ok, F)
    z = logistic_scores(r_sel[ok].astype(np.float64), Y, np.nan_to_num(r_rep).astype(np.float64), l2)
    for k, i in enumerate(cols):
        out[i] = z[:, k]
    return out


__all__ = ["joint_binary_scores", "logistic_scores", "probe_associate", "ridge_scores"]
