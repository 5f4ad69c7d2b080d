"""Where a latent fires, and whether it falls when its finding is removed.

- Mask share: of a latent's activation over the current image's patches, the share on the
  patches the finding's mask touches (phantoms save masks). Chance for a latent that ignores
  the finding is the touched patches' share of the grid, reported beside it.
- Counterfactual: each phantom has a healthy twin (same patient, pose and exposure, no
  findings; ``meta['healthy']``). :func:`write_twin_jsonl` writes the twins as a study list with
  the same ids and prompt fields, to capture with the same model and site (image positions
  only; they precede the indication in MAIRA-2's prompt, so they see only the image). The
  matched latent *falls* on a pair when its maximum over the image positions drops by at least
  ``min_drop`` of its value on the finding image: ``twin_max <= (1 - min_drop) * cur_max``
  with ``cur_max > 0``; a latent silent on the finding image does not fall.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from eval.recovery.metrics import ScopeActs, study_max
from radinterp.data.study import Study


def patch_masks(studies: list[Study], findings: list[str], image_size: int,
                patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(targets (N, P, F) bool: the finding's mask touches the patch after the image's own
    resize + centre-crop, known (N, F) bool: the study has that finding's mask)."""
    from PIL import Image

    from radinterp.models.geometry import mask_patch_fraction

    side = image_size // patch_size
    targets = np.zeros((len(studies), side * side, len(findings)), bool)
    known = np.zeros((len(studies), len(findings)), bool)
    for i, s in enumerate(studies):
        for j, f in enumerate(findings):
            path = (s.masks or {}).get(f)
            if not path:
                continue
            with Image.open(path) as im:
                mask = np.asarray(im.convert("L")) > 64  # (H, W) on the original's pixels
            targets[i, :, j] = (mask_patch_fraction(mask, image_size, patch_size) > 0).reshape(-1)
            known[i, j] = True
    return targets, known


@torch.no_grad()
def mask_share(encoder, latent: int, sa: ScopeActs, study_idx: np.ndarray,
               masks: np.ndarray) -> tuple[float, float, int]:
    """(mean share of ``latent``'s activation inside the mask, mean mask area, studies counted)
    over the studies ``study_idx`` (indices into ``sa.study_ids``) where it fires; ``masks``
    (len(study_idx), P) bool patch masks in the same order."""
    shares, areas = [], []
    for i, m in zip(study_idx.tolist(), masks, strict=True):
        rows = np.flatnonzero(sa.study == i)
        z = encoder.encode(sa.acts[torch.from_numpy(rows)])[:, latent].float()  # (n_rows,)
        total = float(z.sum())
        if total <= 0:
            continue
        inside = torch.from_numpy(m[sa.patch[rows]])  # (n_rows,) bool
        shares.append(float(z[inside].sum()) / total)
        areas.append(float(m.mean()))
    if not shares:
        return float("nan"), float("nan"), 0
    return float(np.mean(shares)), float(np.mean(areas)), len(shares)


def twin_studies(studies: list[Study]) -> list[Study]:
    """The healthy twins of phantom ``studies``: same ids and prompt fields, no report."""
    out = []
    for s in studies:
        twin = s.meta.get("healthy")
        if not twin:
            raise ValueError(f"study {s.study_id!r} has no healthy twin (meta['healthy']); "
                             "counterfactuals need phantom folders from radinterp phantoms")
        out.append(Study(s.study_id, frontal=str(twin), indication=s.indication,
                         technique=s.technique, comparison=s.comparison, meta={"twin_of": s.study_id}))
    return out


def write_twin_jsonl(studies: list[Study], path: str | Path) -> Path:
    """Write the healthy twins of phantom ``studies`` as a MIMIC-style JSONL study list (to
    capture with ``radinterp capture --data PATH``)."""
    path = Path(path)
    rows = [{"study_id": t.study_id, "frontal": t.frontal, "indication": t.indication,
             "technique": t.technique, "comparison": t.comparison} for t in twin_studies(studies)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tmp.replace(path)
    return path


def twin_scores(encoder, cur: ScopeActs, twins: ScopeActs) -> np.ndarray:
    """(n_studies of ``cur``, d_sae): each latent's max over the twin's image positions, in
    ``cur``'s study order (NaN where a study has no twin)."""
    t = study_max(encoder, twins)  # (n_twins, d_sae)
    where = {sid: i for i, sid in enumerate(twins.study_ids)}
    out = np.full((cur.n_studies, t.shape[1]), np.nan, np.float32)
    for i, sid in enumerate(cur.study_ids):
        if sid in where:
            out[i] = t[where[sid]]
    return out


def drop_rate(cur_max: np.ndarray, twin_max: np.ndarray, min_drop: float = 0.5) -> tuple[float, int]:
    """(share of pairs where the latent falls, pairs): ``cur_max``, ``twin_max`` (n,) of one
    latent on the finding images and their twins (pairs without a twin are left out)."""
    if not 0 < min_drop <= 1:
        raise ValueError(f"min_drop must be in (0, 1], got {min_drop}")
    ok = ~np.isnan(twin_max)
    cur, twin = cur_max[ok], twin_max[ok]
    if cur.size == 0:
        return float("nan"), 0
    falls = (cur > 0) & (twin <= (1 - min_drop) * cur)
    return float(falls.mean()), int(cur.size)
