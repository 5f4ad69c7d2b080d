"""Pixel grid <-> patient coordinates, and the vectorised drawing primitives.

Patient coordinates are normalised: ``x`` runs 0..1 from the image's left edge (the patient's
right side, radiological convention) to its right edge, ``y`` runs 0..1 from top to bottom. A
:class:`Pose` (rotation, shift, zoom) maps the pixel grid onto patient coordinates, so every
anatomical function evaluated on ``canvas.x`` / ``canvas.y`` is automatically rotated and
shifted, and masks computed the same way stay aligned with the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Pose:
    """Patient positioning on the detector."""

    rotation_deg: float = 0.0
    """In-plane rotation (positive = clockwise on the image)."""
    shift_x: float = 0.0
    """Horizontal shift of the patient, in image widths."""
    shift_y: float = 0.0
    """Vertical shift of the patient, in image heights."""
    zoom: float = 1.0
    """Magnification (> 1 = patient appears larger)."""


@lru_cache(maxsize=8)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    gy, gx = np.meshgrid(c, c, indexing="ij")  # (S, S) each
    gx.setflags(write=False)
    gy.setflags(write=False)
    return gx, gy


class Canvas:
    """Patient-coordinate grids for one image of side ``size`` under one pose."""

    def __init__(self, size: int, pose: Pose) -> None:
        self.size = size
        self.pose = pose
        gx, gy = _pixel_grid(size)
        th = np.deg2rad(pose.rotation_deg)
        self._c, self._s = float(np.cos(th)), float(np.sin(th))
        u = (gx - 0.5 - pose.shift_x) / pose.zoom
        v = (gy - 0.5 - pose.shift_y) / pose.zoom
        # inverse rotation: image -> patient
        self.x = (self._c * u + self._s * v + 0.5).astype(np.float32)  # (S, S)
        self.y = (-self._s * u + self._c * v + 0.5).astype(np.float32)  # (S, S)
        self.px = 1.0 / (size * pose.zoom)
        """One pixel in patient units (for edge softness)."""

    def to_pixels(self, pts: np.ndarray) -> np.ndarray:
        """Patient coordinates ``(N, 2)`` (x, y) -> pixel coordinates ``(N, 2)`` (col, row)."""
        u, v = pts[:, 0] - 0.5, pts[:, 1] - 0.5
        ru = self._c * u - self._s * v
        rv = self._s * u + self._c * v
        col = (ru * self.pose.zoom + 0.5 + self.pose.shift_x) * self.size - 0.5
        row = (rv * self.pose.zoom + 0.5 + self.pose.shift_y) * self.size - 0.5
        return np.stack([col, row], axis=1)

    def bbox(self, x0: float, y0: float, x1: float, y1: float) -> tuple[slice, slice]:
        """Pixel (rows, cols) slices covering the patient-space box, padded by 2 px."""
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64)
        pp = self.to_pixels(corners)
        c0 = int(max(0, np.floor(pp[:, 0].min()) - 2))
        c1 = int(min(self.size, np.ceil(pp[:, 0].max()) + 3))
        r0 = int(max(0, np.floor(pp[:, 1].min()) - 2))
        r1 = int(min(self.size, np.ceil(pp[:, 1].max()) + 3))
        return slice(r0, max(r0, r1)), slice(c0, max(c0, c1))

    def ramp(self, d: np.ndarray, width_px: float = 1.5) -> np.ndarray:
        """Soft step: 0 where ``d <= -w/2``, 1 where ``d >= w/2`` (``d`` in patient units)."""
        r = d * (1.0 / (width_px * self.px))
        r += 0.5
        np.maximum(r, 0.0, out=r)
        return np.minimum(r, 1.0, out=r)


def clip(a: np.ndarray, lo: float, hi: float | None) -> np.ndarray:
    """``np.clip`` without its Python-level overhead (matters on 224 px images)."""
    out = np.maximum(a, lo)
    return out if hi is None else np.minimum(out, hi)


def smooth_curve(ctrl: np.ndarray, n: int = 24) -> np.ndarray:
    """Catmull-Rom spline through control points ``(K, 2)`` -> ``(n*(K-1)+1, 2)`` points."""
    p = np.concatenate([ctrl[:1], ctrl, ctrl[-1:]], axis=0)
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]  # (n, 1)
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    out.append(ctrl[-1:])
    return np.concatenate(out, axis=0)


def polyline_coverage(
    canvas: Canvas, pts: np.ndarray, width: float, soft_px: float = 1.0
) -> np.ndarray:
    """Coverage ``(S, S)`` in [0, 1] of a polyline of ``width`` (patient units) through ``pts``.

    Works in pixel space on the bounding box of the line only, so cost scales with the
    line's footprint, not the image.
    """
    size = canvas.size
    out = np.zeros((size, size), dtype=np.float32)
    pp = canvas.to_pixels(np.asarray(pts, dtype=np.float64))  # (N, 2) col,row
    half = 0.5 * width * size * canvas.pose.zoom  # half width in pixels
    pad = half + soft_px + 1
    c0 = int(max(0, np.floor(pp[:, 0].min() - pad)))
    c1 = int(min(size, np.ceil(pp[:, 0].max() + pad) + 1))
    r0 = int(max(0, np.floor(pp[:, 1].min() - pad)))
    r1 = int(min(size, np.ceil(pp[:, 1].max() + pad) + 1))
    if c0 >= c1 or r0 >= r1:
        return out
    cc = np.arange(c0, c1, dtype=np.float32)[None, None, :]  # (1, 1, w)
    rr = np.arange(r0, r1, dtype=np.float32)[None, :, None]  # (1, h, 1)
    a = pp[:-1].astype(np.float32)  # (M, 2)
    ab = pp[1:].astype(np.float32) - a
    den = np.maximum((ab**2).sum(1), 1e-9)
    ax_, ay_ = a[:, 0, None, None], a[:, 1, None, None]  # (M, 1, 1)
    bx_, by_ = ab[:, 0, None, None], ab[:, 1, None, None]
    t = ((cc - ax_) * bx_ + (rr - ay_) * by_) / den[:, None, None]  # (M, h, w)
    np.clip(t, 0.0, 1.0, out=t)
    d2 = (cc - ax_ - t * bx_) ** 2 + (rr - ay_ - t * by_) ** 2
    dist = np.sqrt(d2.min(0))  # (h, w)
    out[r0:r1, c0:c1] = np.clip(half + 0.5 * soft_px - dist, 0.0, soft_px) / soft_px
    return out


def ellipse_points(cx: float, cy: float, rx: float, ry: float, n: int = 20) -> np.ndarray:
    """Closed polygon ``(n+1, 2)`` around an axis-aligned ellipse."""
    t = np.linspace(0, 2 * np.pi, n + 1)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)
