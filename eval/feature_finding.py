"""Which SAE latents find which planted findings.

For every study, a latent's score is its maximum activation over the study's stored
positions (optionally one token kind, e.g. image patches); each latent is then ranked by
AUROC against each planted label. The ground truth the phantoms give makes this a direct test
of whether a dictionary has learned the findings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from radinterp.labels import is_positive
from radinterp.metrics import auroc_columns


def study_latent_max(store, site: str, sae, token_kinds=None, chunk_rows: int = 4096):
    """(study_ids, scores (n_studies, d_sae)): per-study max of each latent's activation."""
    index: dict[str, int] = {}
    rows: list[torch.Tensor] = []
    with torch.no_grad():
        for acts, meta in store.iter_chunks(site, chunk_rows=chunk_rows, token_kinds=token_kinds):
            z = sae.encode(acts.to(sae.W_enc.dtype))  # (n, d_sae)
            for sid in np.unique(meta["study_id"]):
                sel = torch.from_numpy(meta["study_id"] == sid)
                best = z[sel].amax(dim=0)
                i = index.setdefault(str(sid), len(rows))
                if i == len(rows):
                    rows.append(best)
                else:
                    rows[i] = torch.maximum(rows[i], best)
    scores = torch.stack(rows).float().numpy() if rows else np.zeros((0, sae.d_sae), np.float32)
    return list(index), scores


@dataclass
class FindingLatent:
    finding: str
    latent: int
    auroc: float
    n_pos: int


def best_latents(study_ids: list[str], scores: np.ndarray, labels: dict[str, dict[str, int]],
                 findings: list[str]) -> list[FindingLatent]:
    """For each finding, the latent whose study score best separates positive studies."""
    out = []
    for name in findings:
        y = np.array([is_positive(labels.get(s, {}), name) for s in study_ids], dtype=bool)
        auc = auroc_columns(scores, y)
        if np.all(np.isnan(auc)):
            continue
        j = int(np.nanargmax(auc))
        out.append(FindingLatent(name, j, float(auc[j]), int(y.sum())))
    return out
