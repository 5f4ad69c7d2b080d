"""Study-level recovery metrics: which latent matches a finding, and how well it holds up on
studies it was not chosen on.

A *scope* is a set of positions of each study: ``image`` (the current frontal image's patch
tokens: what the model encodes from pixels) or ``text`` (every other position, including
the teacher-forced report, whose words may name the finding: reading, not seeing).

For every encoder (trained SAE, random SAE, ...) and finding:

- the studies are split by a seeded permutation of their ids into a *selection* half and a
  *held-out* half (:func:`split_studies`, disjoint by construction and checked);
- a latent's study score is its maximum code over the scope's positions; it *fires* on a
  study when that maximum is > 0 (the encoder's own threshold or top-k decides);
- the AUROC-matched latent maximises AUROC on the selection half, the detector latent maximises
  firing F1 there (ties: the higher AUROC); both are scored on the held-out half only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from radinterp.metrics import auroc_columns
from radinterp.metrics import f1_columns as core_f1_columns  # NaN where undefined

SCOPES = {"image": ["image"], "text": ["boilerplate", "prompt_content", "report", "generated"]}
"""Scope name -> token kinds it holds."""


@dataclass
class ScopeActs:
    """One scope's activations of a store, in memory, with the study of every row."""

    acts: torch.Tensor
    """(N, d_in) float32 activations."""
    study: np.ndarray
    """(N,) int64 index into ``study_ids`` of each row."""
    patch: np.ndarray
    """(N,) int64 ``patch_row * side + patch_col`` of an image row, else -1."""
    study_ids: list[str]
    """Study ids in first-seen order."""

    @property
    def n_studies(self) -> int:
        return len(self.study_ids)


def load_scope(store, site: str, scope: str, chunk_rows: int = 8192) -> ScopeActs:
    """Read the rows of ``scope`` (a :data:`SCOPES` name) at ``site``; image scope keeps the
    current frontal image only (slot 0)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; valid scopes: {', '.join(SCOPES)}")
    acts, study, rows, cols, ids = [], [], [], [], {}
    for a, m in store.iter_chunks(site, chunk_rows=chunk_rows, token_kinds=SCOPES[scope]):
        if scope == "image":
            keep = m["image_slot"] == 0
            a, m = a[torch.from_numpy(keep)], {c: v[keep] for c, v in m.items()}
        acts.append(a)
        study.append(np.array([ids.setdefault(str(s), len(ids)) for s in m["study_id"]], np.int64))
        rows.append(m["patch_row"].astype(np.int64))
        cols.append(m["patch_col"].astype(np.int64))
    if not ids:
        raise ValueError(f"the store holds no {scope} rows at {site}; capture with "
                         "--token-filter all (or one that keeps them)")
    r, c = np.concatenate(rows), np.concatenate(cols)
    side = int(c.max()) + 1 if c.size else 1  # (square patch grid)
    patch = np.where(r >= 0, r * side + c, -1)
    return ScopeActs(torch.cat(acts), np.concatenate(study), patch, list(ids))


@torch.no_grad()
def study_max(encoder, sa: ScopeActs, chunk_rows: int = 4096) -> np.ndarray:
    """(n_studies, d_sae): each latent's maximum code over each study's rows."""
    out = torch.full((sa.n_studies, encoder.d_sae), -torch.inf)
    for lo in range(0, sa.acts.shape[0], chunk_rows):
        z = encoder.encode(sa.acts[lo:lo + chunk_rows]).float()  # (n, d_sae)
        idx = torch.from_numpy(sa.study[lo:lo + chunk_rows]).unsqueeze(1).expand_as(z)
        out.scatter_reduce_(0, idx, z, reduce="amax")
    return out.numpy()


@torch.no_grad()
def study_mean(encoder, sa: ScopeActs, chunk_rows: int = 4096) -> np.ndarray:
    """(n_studies, d_sae): each output's mean over each study's rows (a linear probe's logit
    of the mean-pooled residual)."""
    out = torch.zeros(sa.n_studies, encoder.d_sae)
    n = torch.bincount(torch.from_numpy(sa.study), minlength=sa.n_studies).clamp_min(1)
    for lo in range(0, sa.acts.shape[0], chunk_rows):
        z = encoder.encode(sa.acts[lo:lo + chunk_rows]).float()  # (n, d_sae)
        out.index_add_(0, torch.from_numpy(sa.study[lo:lo + chunk_rows]), z)
    return (out / n.unsqueeze(1)).numpy()


def pooled_residuals(sa: ScopeActs) -> torch.Tensor:
    """(n_studies, d_in) mean residual of each study's rows (the probe's features)."""
    out = torch.zeros(sa.n_studies, sa.acts.shape[1])
    out.index_add_(0, torch.from_numpy(sa.study), sa.acts)
    n = torch.bincount(torch.from_numpy(sa.study), minlength=sa.n_studies).clamp_min(1)
    return out / n.unsqueeze(1)


def split_studies(study_ids: list[str], seed: int = 0, frac: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(selection, held_out) index arrays into ``study_ids``: a seeded permutation of the sorted
    ids, the first ``frac`` for selection. Disjoint, and each study's side depends only on the
    set of ids and the seed."""
    if not 0 < frac < 1:
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    if len(set(study_ids)) != len(study_ids):
        raise ValueError("study ids repeat; each study must appear once (check the store)")
    order = sorted(range(len(study_ids)), key=lambda i: study_ids[i])
    perm = np.random.default_rng(seed).permutation(len(order))
    ranked = np.asarray(order, np.int64)[perm]
    n_sel = int(round(frac * len(ranked)))
    sel, held = np.sort(ranked[:n_sel]), np.sort(ranked[n_sel:])
    if np.intersect1d(sel, held).size:
        raise RuntimeError("selection and held-out studies overlap")  # cannot happen
    return sel, held


def f1_columns(fires: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Firing F1 of every column of ``fires`` (n, m) bool against ``y`` (n,) bool; 0 where no
    study is positive in either (the core's :func:`radinterp.metrics.f1_columns` says NaN)."""
    return np.nan_to_num(core_f1_columns(fires, y), nan=0.0)


@dataclass
class Match:
    """One encoder's matched latents for one finding, scored on the held-out studies."""

    latent_auroc: int
    """Latent with the best selection-half AUROC."""
    auroc: float
    """Its held-out AUROC."""
    latent: int
    """Detector latent: the best selection-half firing F1."""
    f1: float
    """Its held-out firing F1 (fires = study max > 0)."""
    fire_rate: float
    """Share of held-out studies it fires on."""


def match_latents(scores: np.ndarray, y: np.ndarray, sel: np.ndarray, held: np.ndarray,
                  fixed: int | None = None, fire_at: float = 0.0) -> Match:
    """Match latents of ``scores`` (n_studies, d_sae) to labels ``y`` (n_studies,) on ``sel``
    and score them on ``held``. ``fixed`` skips the choice (a probe's own column); a study
    fires where its score > ``fire_at``."""
    s_sel, s_held = scores[sel], scores[held]
    if fixed is None:
        auc_sel = auroc_columns(s_sel, y[sel])
        j_auc = int(np.nanargmax(auc_sel)) if not np.all(np.isnan(auc_sel)) else 0
        f1_sel = f1_columns(s_sel > fire_at, y[sel])
        best = np.flatnonzero(f1_sel == f1_sel.max())
        j_f1 = int(best[np.argmax(np.nan_to_num(auc_sel[best], nan=-1))])
    else:
        j_auc = j_f1 = int(fixed)
    auc = float(auroc_columns(s_held[:, [j_auc]], y[held])[0])
    fires = s_held[:, [j_f1]] > fire_at
    return Match(j_auc, auc, j_f1, float(f1_columns(fires, y[held])[0]), float(fires.mean()))
