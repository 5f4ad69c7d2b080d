"""Localisation metrics of maps on the patch grid against ground-truth patch masks.

Each metric scores one (study, finding) pair whose study has the finding: the pointing game
(the map's maximum falls on a patch the mask touches), Dice and IoU of the thresholded map
against the mask's patches. A pair without the mask the metric needs is skipped and counted
(``skipped``, with the reasons from :class:`~eval.methods.masks.PatchMasks`), never scored.
A pair whose mask touches no patch of the crop (the finding lies outside what the model
sees) is counted apart (``outside_crop``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from eval.methods.masks import PatchMasks


def pointing_hit(heat: np.ndarray, target: np.ndarray) -> bool:
    """Whether the maximum of ``heat`` (n, n) lies on a True patch of ``target`` (n, n); ties
    count as a hit when any maximal patch is on the target."""
    heat = np.asarray(heat, np.float64)
    top = heat >= heat.max()
    return bool((top & np.asarray(target, bool)).any())


def dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice of two bool masks; 1.0 when both are empty."""
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    den = p.sum() + t.sum()
    return 1.0 if den == 0 else float(2 * (p & t).sum() / den)


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of two bool masks; 1.0 when both are empty."""
    p, t = np.asarray(pred, bool), np.asarray(target, bool)
    union = (p | t).sum()
    return 1.0 if union == 0 else float((p & t).sum() / union)


@dataclass
class FindingLocalisation:
    """Localisation scores of one finding over the studies that have it."""

    scored: int = 0
    """(study, finding) pairs scored."""
    skipped: int = 0
    """Pairs with the finding but without its mask (not scored)."""
    outside_crop: int = 0
    """Pairs whose mask touches no patch of the crop (not scored)."""
    pointing: list[bool] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        mean = (lambda v: float(np.mean(v)) if v else None)
        return {"n_scored": self.scored, "n_skipped_no_mask": self.skipped,
                "n_outside_crop": self.outside_crop, "pointing_game": mean(self.pointing),
                "dice": mean(self.dice), "iou": mean(self.iou)}


def localisation_scores(maps: np.ndarray, masks: PatchMasks, positives: np.ndarray,
                        thresholds: Sequence[float] | None = None,
                        min_fraction: float = 0.0) -> dict[str, FindingLocalisation]:
    """Score ``maps`` (N, F, n, n) against ``masks`` (same studies and findings) where
    ``positives`` (N, F) is True. ``thresholds`` (F,): a patch is predicted where the map is
    >= it (Dice / IoU; None: pointing game only). ``min_fraction``: a patch is in the target
    when the mask covers more than this share of it."""
    maps = np.asarray(maps, np.float64)
    pos = np.asarray(positives, bool)
    n, f = pos.shape
    if maps.shape[:2] != (n, f) or masks.fraction.shape[:2] != (n, f):
        raise ValueError(f"maps {maps.shape[:2]}, masks {masks.fraction.shape[:2]} and positives "
                         f"{pos.shape} must share (studies, findings); align them first")
    target = masks.target(min_fraction)  # (N, F, n, n)
    out = {name: FindingLocalisation() for name in masks.findings}
    for j, name in enumerate(masks.findings):
        tally = out[name]
        for i in np.flatnonzero(pos[:, j]):
            if not masks.known[i, j]:
                tally.skipped += 1
                continue
            t = target[i, j]
            if not t.any():
                tally.outside_crop += 1
                continue
            tally.scored += 1
            tally.pointing.append(pointing_hit(maps[i, j], t))
            if thresholds is not None:
                pred = maps[i, j] >= thresholds[j]
                tally.dice.append(dice(pred, t))
                tally.iou.append(iou(pred, t))
    return out


def best_dice_threshold(maps: np.ndarray, targets: np.ndarray,
                        candidates: np.ndarray | None = None) -> tuple[float, float]:
    """(threshold, mean Dice) maximising the mean Dice of ``maps`` (K, n, n) >= threshold
    against ``targets`` (K, n, n) bool over K scored pairs (pick on validation). Candidates:
    the maps' own quantiles (default 99 of them)."""
    maps = np.asarray(maps, np.float64)
    if maps.shape[0] == 0:
        raise ValueError("no scored pairs to choose a threshold on; pass studies with masks")
    if candidates is None:
        candidates = np.unique(np.quantile(maps, np.linspace(0.01, 0.99, 99)))
    t = np.asarray(targets, bool).reshape(len(maps), -1)  # (K, P)
    m = maps.reshape(len(maps), -1)
    best = (float(candidates[0]), -1.0)
    for c in candidates:
        p = m >= c  # (K, P)
        inter, den = (p & t).sum(1), p.sum(1) + t.sum(1)
        d = np.where(den > 0, 2 * inter / np.maximum(den, 1), 1.0).mean()
        if d > best[1]:
            best = (float(c), float(d))
    return best


__all__ = ["FindingLocalisation", "best_dice_threshold", "dice", "iou", "localisation_scores",
           "pointing_hit"]
