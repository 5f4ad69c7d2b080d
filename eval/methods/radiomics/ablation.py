"""The paper's ablation on the test split: persona (oracle / learned / none) x usage predictor
(on / off), each with its baselines, scored by AUROC per finding.

Every variant standardises its features on the training split (columns constant there are
dropped), fits :func:`eval.methods.radiomics.usage.train_fingerprint` on train with early
stopping on validation, and scores the test split. Baselines beside each variant's numbers:
the same model fitted on *shuffled* training labels, and on *random* Gaussian features of the
same shape (both should sit near AUROC 0.5; what a variant adds above them is signal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from eval.methods.radiomics.usage import UsageConfig, predict, train_fingerprint
from radinterp.metrics import auroc


@dataclass
class Standardiser:
    """Train-split standardisation of the kept (non-constant) feature columns."""

    keep: np.ndarray
    """(F_all,) bool: columns that vary on the training split."""
    mean: np.ndarray
    """(F_kept,) training means."""
    std: np.ndarray
    """(F_kept,) training standard deviations."""

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardiser:
        std = x.std(0)
        keep = std > 1e-9 * np.maximum(1.0, np.abs(x).max(0))
        return cls(keep, x[:, keep].mean(0), std[keep])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, self.keep] - self.mean) / self.std
        return np.clip(z, -10, 10).astype(np.float32)  # a stray outlier must not dominate


def feature_matrix(own: np.ndarray, persona: np.ndarray | None) -> np.ndarray:
    """(N, F) image features, or (N, 2F) image features + residuals (image minus persona)."""
    return own if persona is None else np.concatenate([own, own - persona], 1)


@dataclass
class Fit:
    """One fitted variant and its test scores."""

    model: object
    """The :class:`FingerprintModel`."""
    standardiser: Standardiser
    """Its feature standardisation."""
    auroc: np.ndarray
    """(K,) test AUROC per finding (NaN where the test split has one class)."""
    usage: np.ndarray
    """(N_test, F_kept) test usage (all ones without the predictor)."""


def per_finding_auroc(prob: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(K,) AUROC of column k of ``prob`` (N, K) against column k of ``y`` (N, K)."""
    return np.array([auroc(y[:, k], prob[:, k]) for k in range(y.shape[1])])


def fit_variant(x: np.ndarray, y: np.ndarray, imgs: torch.Tensor, rows: dict[str, np.ndarray],
                cfg: UsageConfig, use_usage: bool, shuffle_labels: bool = False) -> Fit:
    """Fit on ``rows['train']`` (early stopping on ``rows['val']``), score ``rows['test']``;
    ``x`` (N, F) raw features, ``y`` (N, K) bool labels, ``imgs`` (N, 1, R, R)."""
    tr, va, te = rows["train"], rows["val"], rows["test"]
    std = Standardiser.fit(x[tr])
    y_tr = y[tr].astype(np.float32)
    if shuffle_labels:
        y_tr = y_tr[np.random.default_rng(cfg.seed).permutation(len(y_tr))]
    model = train_fingerprint(imgs[tr], std(x[tr]), y_tr, imgs[va], std(x[va]),
                              y[va].astype(np.float32), cfg, use_usage)
    prob, u = predict(model, imgs[te], std(x[te]))
    return Fit(model, std, per_finding_auroc(prob, y[te]), u)


def sparsity(u: np.ndarray, threshold: float) -> dict[str, float]:
    """Usage sparsity over studies: mean usage, mean share of features in a fingerprint
    (u > threshold), and the mean fingerprint size."""
    used = u > threshold
    return {"mean_usage": float(u.mean()), "used_share": float(used.mean()),
            "fingerprint_size": float(used.sum(1).mean()), "n_features": int(u.shape[1])}


def _table(a: np.ndarray, findings: list[str]) -> dict[str, float | None]:
    return {f: (None if np.isnan(v) else round(float(v), 4)) for f, v in zip(findings, a, strict=True)}


def _mean(a: np.ndarray) -> float | None:
    return None if np.all(np.isnan(a)) else round(float(np.nanmean(a)), 4)


def run_ablation(own: np.ndarray, personas: dict[str, np.ndarray | None], y: np.ndarray,
                 imgs: torch.Tensor, rows: dict[str, np.ndarray], findings: list[str],
                 cfg: UsageConfig, baselines: bool = True) -> tuple[dict, dict[tuple[str, bool], Fit]]:
    """(metrics, fits): every persona in ``personas`` (name -> persona features or None for
    ``none``) with the usage predictor on and off, plus baselines per variant."""
    out: dict = {}
    fits: dict[tuple[str, bool], Fit] = {}
    rng = np.random.default_rng(cfg.seed)
    for name, feats in personas.items():
        x = feature_matrix(own, feats)
        for use in (True, False):
            key = f"{name}/{'usage' if use else 'no_usage'}"
            fit = fit_variant(x, y, imgs, rows, cfg, use)
            fits[(name, use)] = fit
            row: dict = {"auroc": _table(fit.auroc, findings), "mean_auroc": _mean(fit.auroc),
                         "n_features": int(fit.standardiser.keep.sum())}
            if use:
                row["sparsity"] = sparsity(fit.usage, cfg.threshold)
            if baselines:
                shuf = fit_variant(x, y, imgs, rows, cfg, use, shuffle_labels=True)
                rand = fit_variant(rng.standard_normal(x.shape), y, imgs, rows, cfg, use)
                row["baseline_shuffled_labels"] = {"auroc": _table(shuf.auroc, findings),
                                                   "mean_auroc": _mean(shuf.auroc)}
                row["baseline_random_features"] = {"auroc": _table(rand.auroc, findings),
                                                   "mean_auroc": _mean(rand.auroc)}
            out[key] = row
    return out, fits


def persona_gain(rows: dict, findings: list[str]) -> dict:
    """Per finding, each persona's test AUROC minus the no-persona one (same usage setting):
    the paper's ablation, positive where the persona helps."""
    gain: dict = {}
    for key, row in rows.items():
        name, use = key.split("/")
        base = rows.get(f"none/{use}")
        if name == "none" or base is None:
            continue
        d = {f: (None if row["auroc"][f] is None or base["auroc"][f] is None
                 else round(row["auroc"][f] - base["auroc"][f], 4)) for f in findings}
        gain[key] = d
    return gain
