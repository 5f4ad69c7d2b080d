"""Images and lung regions of one study on the method's square working grid.

- Images: any file :func:`radinterp.models.image.load_image` opens (8/16-bit PNG, JPEG,
  DICOM ...), min-max rescaled to 0-255 and resized (bilinear) to ``size x size``; radiomic
  features are measured in that frame.
- Lung regions, first that applies:
  ``phantom``: re-rendered from the phantom's spec (its folder's cfg.json and the study index):
  the lungs of the image's own anatomy (cardiomegaly and the like change them) and those of
  the healthy twin's;
  ``mask``: the study's ``masks['lung']`` file (real-cxr: 255 = lung, 127 = device / ignore,
  so ``> 191`` is lung);
  ``estimate``: :func:`estimate_lungs`, dark connected regions inside the body.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from radinterp.data.study import Study
from radinterp.models.image import load_image, to_greyscale_uint8

LUNG_MASK_KEY = "lung"
"""Key of a lung mask in ``Study.masks`` (real-cxr's ``mask_file``)."""


@dataclass
class Region:
    """Lung region of one study on the working grid."""

    image: np.ndarray
    """(S, S) bool lung region of the study's own image."""
    healthy: np.ndarray
    """(S, S) bool lung region of its healthy persona (the same as ``image`` unless a
    phantom's findings change its anatomy)."""
    source: str
    """``phantom``, ``mask`` or ``estimate``."""


def load_grey(image, size: int) -> np.ndarray:
    """(size, size) float32 on 0-255 of any loadable image (path, PIL, array)."""
    im = to_greyscale_uint8(load_image(image))
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, np.float32)


def _resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    if mask.shape == (size, size):
        return mask.astype(bool)
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(im) > 127


@lru_cache(maxsize=8)
def _phantom_cfg(root: str):
    from radinterp.data.phantoms import PhantomConfig

    return PhantomConfig(**{k: v for k, v in json.loads((Path(root) / "cfg.json").read_text()).items()
                            if k in PhantomConfig.__dataclass_fields__})


def phantom_lungs(study: Study) -> tuple[np.ndarray, np.ndarray]:
    """(image lungs, healthy-twin lungs), each (S, S) bool at the phantom's own size."""
    from radinterp.data.phantoms.anatomy import render_anatomy
    from radinterp.data.phantoms.canvas import Canvas
    from radinterp.data.phantoms.findings import get_finding
    from radinterp.data.phantoms.spec import sample_study

    root = Path(str(study.frontal)).parent.parent
    if not (root / "cfg.json").is_file() or "index" not in study.meta:
        raise ValueError(f"study {study.study_id!r} is not in a phantom folder with cfg.json; "
                         "pass --region mask or estimate for non-phantom data")
    cfg = _phantom_cfg(str(root))
    spec = sample_study(cfg, int(study.meta["index"]))
    if spec.study_id != study.study_id:
        raise ValueError(f"phantom index {study.meta['index']} renders {spec.study_id}, not "
                         f"{study.study_id}; regenerate the folder with radinterp phantoms")
    cur, canvas = spec.current, Canvas(cfg.size, spec.current.pose)
    overrides: dict = {}
    for name, attrs in cur.findings.items():
        overrides.update(get_finding(name).anatomy(attrs, spec.patient))
    base = render_anatomy(canvas, spec.patient, cur.view)
    healthy = sum(base.lung.values()) > 0.5
    if not overrides:
        return healthy, healthy
    own = render_anatomy(canvas, spec.patient.with_overrides(**overrides), cur.view)
    return sum(own.lung.values()) > 0.5, healthy


def estimate_lungs(grey: np.ndarray) -> np.ndarray:
    """(H, W) bool lung estimate of a radiograph (H, W) on 0-255: the two largest dark
    components (Otsu on the smoothed image) that touch no image border, holes filled."""
    g = ndimage.gaussian_filter(grey.astype(np.float32), sigma=max(1.0, grey.shape[0] / 128))
    h, w = g.shape
    centre = g[h // 10: h - h // 10, w // 10: w - w // 10]
    hist, edges = np.histogram(centre, bins=64)
    p = hist / max(hist.sum(), 1)
    omega, mu = np.cumsum(p), np.cumsum(p * np.arange(64))
    between = (mu[-1] * omega - mu) ** 2 / np.maximum(omega * (1 - omega), 1e-12)
    dark = g < edges[int(np.argmax(between)) + 1]
    dark = ndimage.binary_opening(dark, iterations=max(1, h // 64))
    lab, n = ndimage.label(dark)
    border = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))) - {0}
    sizes = ndimage.sum(np.ones_like(lab), lab, index=np.arange(1, n + 1))
    keep = [i + 1 for i in np.argsort(sizes)[::-1] if i + 1 not in border][:2]
    out = np.isin(lab, keep) if keep else np.zeros_like(dark)
    if out.sum() < 0.02 * h * w:  # nothing lung-like: fall back to the central two thirds
        out = np.zeros_like(dark)
        out[h // 6: h - h // 6, w // 8: w - w // 8] = True
    return ndimage.binary_fill_holes(out)


def study_region(study: Study, grey: np.ndarray, size: int, kind: str = "auto") -> Region:
    """Lung region of ``study`` on the (size, size) working grid; ``grey`` is its image there.
    ``kind``: ``auto`` (phantom, else mask, else estimate) or one of those names."""
    if kind not in ("auto", "phantom", "mask", "estimate"):
        raise ValueError(f"unknown region kind {kind!r}; valid: auto, phantom, mask, estimate")
    phantom = study.meta.get("source") == "phantom"
    if kind == "phantom" or (kind == "auto" and phantom):
        own, healthy = phantom_lungs(study)
        return Region(_resize_mask(own, size), _resize_mask(healthy, size), "phantom")
    path = (study.masks or {}).get(LUNG_MASK_KEY)
    if kind == "mask" or (kind == "auto" and path):
        if not path:
            raise ValueError(f"study {study.study_id!r} has no lung mask; pass --region estimate")
        with Image.open(path) as im:
            m = _resize_mask(np.asarray(im.convert("L")) > 191, size)
        if m.any():
            return Region(m, m, "mask")
    m = estimate_lungs(grey)
    return Region(m, m, "estimate")


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks (NaN when both are empty)."""
    s = int(a.sum()) + int(b.sum())
    return float(2 * (a & b).sum() / s) if s else float("nan")
