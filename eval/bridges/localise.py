"""Where they look: SAE feature maps vs CSR similarity maps vs INSIGHT heatmaps vs the mask.

Per finding, over the report-split studies that have it and its mask: the pointing game
(:func:`eval.methods.localisation.pointing_hit`) and the mask share (share of the map's
positive mass on the patches the mask touches; chance = the mask's share of the grid) and the
IoU at matched area (the map's top-k patches, k = the mask's patch count) of each
map source side by side on the *same* studies. A study a source lacks (no map, the method has
no such concept, a silent SAE feature for the mask share) is skipped and counted per source.

For each CSR concept matched to an SAE feature: the Spearman correlation of the two maps
over the patch grid per report study, beside the random SAE's matched feature.

:func:`winners`: per finding and metric, the source(s) that localise it best, and the means
over the findings every source scored (which method localises which finding best).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

from eval.methods.localisation import iou, pointing_hit
from eval.methods.masks import PatchMasks
from eval.bridges.associate import spearman_columns

MapFn = Callable[[str, str], "np.ndarray | str"]
"""(study id, finding) -> (n, n) map, or the reason there is none."""


def mask_share(heat: np.ndarray, target: np.ndarray) -> float | None:
    """Share of ``heat``'s positive mass on ``target`` patches; None when nothing is positive."""
    h = np.clip(np.asarray(heat, np.float64), 0, None)
    total = h.sum()
    return None if total <= 0 else float((h * target).sum() / total)


def iou_matched(heat: np.ndarray, target: np.ndarray) -> float | None:
    """IoU with the mask of the map's top-k patches, k = the mask's patch count (every source
    predicts the same area, so no threshold favours one); None for a silent map."""
    h, t = np.ravel(np.asarray(heat, np.float64)), np.ravel(np.asarray(target, bool))
    if h.max() <= 0 and np.ptp(h) == 0:
        return None
    pred = np.zeros_like(t)
    pred[np.argsort(-h, kind="stable")[:int(t.sum())]] = True
    return iou(pred, t)


def localise(masks: PatchMasks, positives: np.ndarray, sources: dict[str, MapFn]) -> dict:
    """Per finding and source: pointing game and mask share over the positive report studies
    with a mask, with counted skips; plus the chance levels."""
    target = masks.target()  # (N, F, n, n)
    out: dict = {}
    for j, f in enumerate(masks.findings):
        rows = np.flatnonzero(positives[:, j])
        known = [i for i in rows if masks.known[i, j] and target[i, j].any()]
        res = {"n_positive": int(len(rows)), "n_with_mask": len(known),
               "chance_mask_share": float(np.mean([target[i, j].mean() for i in known])) if known else None,
               "sources": {}}
        for name, fn in sources.items():
            hits, shares, ious, skipped = [], [], [], Counter()
            for i in known:
                m = fn(masks.study_ids[i], f)
                if isinstance(m, str):
                    skipped[m] += 1
                    continue
                hits.append(pointing_hit(m, target[i, j]))
                s = mask_share(m, target[i, j])
                if s is None:
                    skipped["silent map (mask share)"] += 1
                else:
                    shares.append(s)
                    ious.append(iou_matched(m, target[i, j]))
            res["sources"][name] = {
                "n_scored": len(hits), "pointing_game": float(np.mean(hits)) if hits else None,
                "n_share": len(shares), "mask_share": float(np.mean(shares)) if shares else None,
                "iou_matched": float(np.mean([v for v in ious if v is not None])) if shares else None,
                "skipped": dict(skipped)}
        out[f] = res
    return out


def map_correlation(study_ids: Sequence[str], a: MapFn, b: MapFn, concept: str) -> dict:
    """Mean Spearman over studies of maps ``a`` vs ``b`` of ``concept`` (flattened grids);
    studies where either map is missing or constant are counted, not scored."""
    vals, skipped = [], Counter()
    for sid in study_ids:
        ma, mb = a(sid, concept), b(sid, concept)
        if isinstance(ma, str) or isinstance(mb, str):
            skipped[ma if isinstance(ma, str) else mb] += 1
            continue
        r = spearman_columns(np.ravel(ma)[:, None], np.ravel(mb))[0]
        if not np.isfinite(r):
            skipped["constant map"] += 1
            continue
        vals.append(float(r))
    return {"n": len(vals), "spearman": float(np.mean(vals)) if vals else None,
            "skipped": dict(skipped)}


WINNER_METRICS = ("pointing_game", "iou_matched", "mask_share")
"""Localisation metrics a winner is named for (higher is better for each)."""


def winners(findings: dict, metrics: Sequence[str] = WINNER_METRICS, tol: float = 1e-9) -> dict:
    """From :func:`localise`'s per-finding result: ``per_finding[f][metric]`` = the best
    source(s) (ties within ``tol`` all named; None when no source scored), ``wins[metric]``
    = findings won per source (a tie counts for each), ``mean[metric]`` = each source's mean
    over the ``n_common`` findings every source scored."""
    per: dict = {}
    wins: dict = {m: Counter() for m in metrics}
    for f, v in findings.items():
        if not v.get("n_with_mask"):
            continue
        per[f] = {}
        for m in metrics:
            vals = {s: d[m] for s, d in v["sources"].items() if d.get(m) is not None}
            if not vals:
                per[f][m] = None
                continue
            top = max(vals.values())
            per[f][m] = sorted(s for s, x in vals.items() if x >= top - tol)
            wins[m].update(per[f][m])
    mean: dict = {}
    for m in metrics:
        srcs = sorted({s for f in per for s in findings[f]["sources"]})
        common = [f for f in per if all(findings[f]["sources"][s].get(m) is not None for s in srcs)]
        mean[m] = {"n_common": len(common), **{s: float(np.mean([findings[f]["sources"][s][m]
                                                                for f in common])) if common else None
                                               for s in srcs}}
    return {"per_finding": per, "wins": {m: dict(c) for m, c in wins.items()}, "mean": mean}


__all__ = ["MapFn", "WINNER_METRICS", "iou_matched", "localise", "map_correlation", "mask_share",
           "winners"]
