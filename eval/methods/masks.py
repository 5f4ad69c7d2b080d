"""Findings, labels and ground-truth masks of studies, put on the model's patch grid.

- Findings of a study: on phantoms the planted findings (``meta['findings']``, named as the
  generator names them, e.g. ``lung_nodule``), whose masks are ``study.masks[name]``; on other
  data the positive labels (:func:`radinterp.labels.positive_labels`) without "No Finding".
- Pixel masks: a mask file (``study.masks[name]``; a pixel > 127 is inside, so real-cxr's
  127 "device / ignore" is outside the lung) or, for NIH studies, the boxes in
  ``meta['bboxes']`` whose label is the finding.
- Patch masks: :meth:`PatchGeometry.mask_fraction` of the pixel mask, the share of each patch
  the finding covers after the image's own resize + centre crop.

A study that lacks a mask is *not* given an empty one: :func:`load_patch_masks` marks it
unknown and counts the reason, and the metrics skip and count it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from radinterp.data.study import Study
from radinterp.errors import InputError
from radinterp.labels import positive_labels
from radinterp.models.geometry import PatchGeometry

NO_FINDING = "No Finding"
MASK_THRESHOLD = 127
"""A mask pixel above this value is inside the region."""


def study_findings(study: Study) -> list[str]:
    """The study's findings: planted ones on phantoms, else positive labels (not "No Finding")."""
    planted = study.meta.get("findings")
    if isinstance(planted, dict):
        return sorted(planted)
    return [name for name in positive_labels(study.labels) if name != NO_FINDING]


def finding_vocabulary(studies: Sequence[Study], min_positives: int = 1) -> list[str]:
    """Findings with at least ``min_positives`` positive studies, sorted by name."""
    counts = Counter(f for s in studies for f in study_findings(s))
    return sorted(name for name, n in counts.items() if n >= min_positives)


def label_matrix(studies: Sequence[Study], findings: Sequence[str]) -> np.ndarray:
    """(N, F) bool: study n has finding f."""
    out = np.zeros((len(studies), len(findings)), bool)
    col = {f: j for j, f in enumerate(findings)}
    for i, s in enumerate(studies):
        for f in study_findings(s):
            if f in col:
                out[i, col[f]] = True
    return out


def _image_size(study: Study) -> tuple[int, int] | None:
    from radinterp.models.geometry import image_size_of

    if study.frontal is None:
        return None
    try:
        if isinstance(study.frontal, (str, Path)):
            return _header_size(Path(study.frontal))
        return image_size_of(study.frontal)
    except (OSError, ValueError):
        return None


def _header_size(path: Path) -> tuple[int, int]:
    from radinterp.models.dicom import is_dicom

    if is_dicom(path):
        from radinterp.models.image import load_image

        return load_image(path).size
    with Image.open(path) as im:  # reads the header only
        return im.size


def _boxes(study: Study, finding: str) -> list[dict]:
    raw = study.meta.get("bboxes")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else []
        except json.JSONDecodeError:
            return []
    return [b for b in raw or [] if isinstance(b, dict) and b.get("label") == finding]


def pixel_mask(study: Study, finding: str) -> tuple[np.ndarray | None, str | None]:
    """((H, W) bool mask of ``finding`` on the study's frontal image, None) or (None, why not)."""
    size = _image_size(study)
    path = (study.masks or {}).get(finding)
    if path:
        if not Path(path).is_file():
            return None, "mask file missing"
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L")) > MASK_THRESHOLD  # (H, W)
        if size is not None and mask.shape != (size[1], size[0]):
            return None, "mask size differs from the image"
        return mask, None
    boxes = _boxes(study, finding)
    if boxes and size is not None:
        w, h = size
        mask = np.zeros((h, w), bool)
        for b in boxes:
            x0, y0 = max(0, int(np.floor(b["x"]))), max(0, int(np.floor(b["y"])))
            x1, y1 = min(w, int(np.ceil(b["x"] + b["w"]))), min(h, int(np.ceil(b["y"] + b["h"])))
            mask[y0:y1, x0:x1] = True
        return mask, None
    return None, "no mask"


@dataclass
class PatchMasks:
    """Ground-truth masks of ``findings`` for ``study_ids`` on an (n_side, n_side) patch grid."""

    study_ids: list[str]
    """Row order of ``fraction`` and ``known``."""
    findings: list[str]
    """Column order."""
    fraction: np.ndarray
    """(N, F, n_side, n_side) float64: share of each patch inside the mask; 0 where unknown."""
    known: np.ndarray
    """(N, F) bool: the study has this finding's mask."""
    missing: dict[str, Counter] = field(default_factory=dict)
    """Finding -> Counter of reasons a mask was not found, over studies that have the finding."""

    def target(self, min_fraction: float = 0.0) -> np.ndarray:
        """(N, F, n, n) bool: the patch holds more than ``min_fraction`` of the finding
        (0: the mask touches it, as in eval.recovery)."""
        return self.fraction > min_fraction


def load_patch_masks(studies: Sequence[Study], findings: Sequence[str],
                     geometry: Callable[[tuple[int, int]], PatchGeometry],
                     positives: np.ndarray | None = None) -> PatchMasks:
    """Patch masks of ``findings`` for ``studies``; ``geometry((W, H))`` gives each image's
    patch geometry (e.g. ``adapter.patch_geometry``). Only cells where ``positives`` (N, F)
    is True are loaded (default: the studies' own findings); the rest stay unknown."""
    pos = label_matrix(studies, findings) if positives is None else np.asarray(positives, bool)
    fractions, known = None, np.zeros((len(studies), len(findings)), bool)
    missing: dict[str, Counter] = {f: Counter() for f in findings}
    for i, s in enumerate(studies):
        for j, f in enumerate(findings):
            if not pos[i, j]:
                continue
            mask, why = pixel_mask(s, f)
            if mask is None:
                missing[f][why or "no mask"] += 1
                continue
            frac = geometry((mask.shape[1], mask.shape[0])).mask_fraction(mask)  # (n, n)
            if fractions is None:
                fractions = np.zeros((len(studies), len(findings), *frac.shape))
            fractions[i, j], known[i, j] = frac, True
    if fractions is None:
        side = geometry((1, 1)).n_side
        fractions = np.zeros((len(studies), len(findings), side, side))
    return PatchMasks([s.study_id for s in studies], list(findings), fractions, known,
                      {f: c for f, c in missing.items() if c})


def roi_grid_cells(mask: np.ndarray, n: int, min_pixels: int = 4) -> list[np.ndarray]:
    """The region ``mask`` (H, W) bool cut into an ``n`` x ``n`` grid over its bounding box:
    ``n * n`` (H, W) bool masks, row-major. Raises :class:`InputError` when the region is
    empty or a cell would be narrower than ``min_pixels`` pixels."""
    m = np.asarray(mask, bool)
    if n < 1:
        raise InputError(f"grid size {n} is not positive", "pass a grid size of 1 or more")
    rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
    if rows.size == 0:
        raise InputError("the region mask is empty", "check the mask file or its threshold")
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    if min(y1 - y0, x1 - x0) < n * min_pixels:
        raise InputError(f"a region of {y1 - y0} x {x1 - x0} pixels cannot hold a {n} x {n} grid "
                         f"of cells at least {min_pixels} pixels wide",
                         f"pass a grid size of at most {min(y1 - y0, x1 - x0) // min_pixels}")
    ye, xe = np.linspace(y0, y1, n + 1).round().astype(int), np.linspace(x0, x1, n + 1).round().astype(int)
    cells = []
    for r in range(n):
        for c in range(n):
            cell = np.zeros_like(m)
            cell[ye[r]:ye[r + 1], xe[c]:xe[c + 1]] = m[ye[r]:ye[r + 1], xe[c]:xe[c + 1]]
            cells.append(cell)
    return cells


__all__ = ["NO_FINDING", "PatchMasks", "finding_vocabulary", "label_matrix", "load_patch_masks",
           "pixel_mask", "roi_grid_cells", "study_findings"]
