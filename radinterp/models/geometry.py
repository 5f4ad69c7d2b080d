"""Patch geometry: where each image token's patch lies in the original radiograph.

MAIRA-2-style preprocessing (``radinterp.models.image.resize_centre_crop``) resizes the
shortest side to ``size`` and centre-crops a ``size`` x ``size`` square, which the vision
tower cuts into an ``n_side`` x ``n_side`` grid of ``patch_size`` patches. ``PatchGeometry``
inverts that map, so results on the patch grid (activations, probes, attributions) can be put
back on the original pixels, and masks drawn on the original can be put on the patch grid.

Coordinates are continuous pixel coordinates of the original image: pixel (i, j) (row, column)
covers ``[j, j + 1) x [i, i + 1)``; a box is ``(x0, y0, x1, y1)`` with x along the width.
PIL's resize maps output pixel edges linearly onto input edges (x_in = x_out * W / resized_W),
which is the map used here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from radinterp.models.image import load_image, resize_crop_plan

SizeLike = tuple[int, int] | Image.Image | np.ndarray | str | Path
"""An original image, or its size as (width, height)."""


def image_size_of(image: SizeLike) -> tuple[int, int]:
    """(width, height) of an image given as (W, H), a PIL image, an (H, W[, C]) array or a path."""
    if isinstance(image, tuple):
        w, h = image
        return int(w), int(h)
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3):
            raise ValueError(f"image array has shape {image.shape}; pass (H, W) or (H, W, C)")
        return int(image.shape[1]), int(image.shape[0])
    return load_image(image).size


@dataclass(frozen=True)
class PatchGeometry:
    """Map between an original image of ``width`` x ``height`` and the model's patch grid."""

    width: int
    """Original image width in pixels."""
    height: int
    """Original image height in pixels."""
    size: int
    """Side of the square crop fed to the vision tower (``ImagePreprocess.size``)."""
    patch_size: int
    """Vision-tower patch side in crop pixels."""
    resized_width: int = field(init=False)
    """Width after resizing the shortest side to ``size`` (before the crop)."""
    resized_height: int = field(init=False)
    """Height after resizing (before the crop)."""
    left: int = field(init=False)
    """First resized column kept by the centre crop."""
    top: int = field(init=False)
    """First resized row kept by the centre crop."""

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size {self.width}x{self.height} must be positive")
        if self.size < 1 or self.patch_size < 1:
            raise ValueError(f"size {self.size} and patch_size {self.patch_size} must be positive")
        if self.size % self.patch_size:
            raise ValueError(f"image size {self.size} is not a multiple of patch size "
                             f"{self.patch_size}; use the adapter's (adapter.patch_geometry)")
        # resize_centre_crop's own plan (a test checks the two agree pixel for pixel)
        nw, nh, left, top = resize_crop_plan(self.width, self.height, self.size)
        object.__setattr__(self, "resized_width", nw)
        object.__setattr__(self, "resized_height", nh)
        object.__setattr__(self, "left", left)
        object.__setattr__(self, "top", top)

    @classmethod
    def of(cls, image: SizeLike, size: int, patch_size: int) -> PatchGeometry:
        """Geometry of ``image`` (or its (W, H) size) for a model with these settings."""
        w, h = image_size_of(image)
        return cls(w, h, size, patch_size)

    # ------------------------------------------------------------------ grid -> original
    @property
    def n_side(self) -> int:
        """Patches per side of the grid."""
        return self.size // self.patch_size

    def x_edges(self) -> np.ndarray:
        """(n_side + 1,) float64 column edges of the patch grid, in original x coordinates."""
        crop_x = self.left + np.arange(self.n_side + 1) * self.patch_size  # resized pixels
        return crop_x * (self.width / self.resized_width)

    def y_edges(self) -> np.ndarray:
        """(n_side + 1,) float64 row edges of the patch grid, in original y coordinates."""
        crop_y = self.top + np.arange(self.n_side + 1) * self.patch_size
        return crop_y * (self.height / self.resized_height)

    def patch_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of patch (row, col) in original pixel coordinates."""
        n = self.n_side
        if not (0 <= row < n and 0 <= col < n):
            raise IndexError(f"patch ({row}, {col}) outside the {n} x {n} grid")
        xe, ye = self.x_edges(), self.y_edges()
        return float(xe[col]), float(ye[row]), float(xe[col + 1]), float(ye[row + 1])

    def patch_boxes(self) -> np.ndarray:
        """(n_side, n_side, 4) float64: box (x0, y0, x1, y1) of every patch, [row, col]."""
        xe, ye = self.x_edges(), self.y_edges()
        n = self.n_side
        out = np.empty((n, n, 4))
        out[..., 0], out[..., 2] = xe[None, :-1], xe[None, 1:]
        out[..., 1], out[..., 3] = ye[:-1, None], ye[1:, None]
        return out

    def crop_box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the part of the original the model sees (the whole grid)."""
        xe, ye = self.x_edges(), self.y_edges()
        return float(xe[0]), float(ye[0]), float(xe[-1]), float(ye[-1])

    # ------------------------------------------------------------------ original -> grid
    def pixel_patches(self) -> tuple[np.ndarray, np.ndarray]:
        """Patch row of every original pixel row (H,) and patch column of every pixel column
        (W,), by pixel centre; -1 where the centre falls outside the crop."""
        return (_axis_patch(self.height, self.resized_height, self.top, self.size, self.patch_size),
                _axis_patch(self.width, self.resized_width, self.left, self.size, self.patch_size))

    def mask_fraction(self, mask: np.ndarray) -> np.ndarray:
        """Share of each patch covered by ``mask`` (H, W): (n_side, n_side) float64 in [0, 1].

        ``mask`` is bool, or float weights in [0, 1]. Exact area integral of the pixel-constant
        mask over each patch's box (a summed-area table read at the fractional box edges).
        """
        m = _as_weights(mask)
        if m.shape != (self.height, self.width):
            raise ValueError(f"mask has shape {m.shape} but the image is (H, W) = "
                             f"({self.height}, {self.width}); draw the mask on the original image")
        sat = np.zeros((self.height + 1, self.width + 1))
        sat[1:, 1:] = m.cumsum(0).cumsum(1)  # sat[i, j] = m[:i, :j].sum()
        xe, ye = self.x_edges(), self.y_edges()
        f = _interp_axis(_interp_axis(sat, xe, axis=1), ye, axis=0)  # (n+1, n+1) F(y, x)
        area = f[1:, 1:] - f[:-1, 1:] - f[1:, :-1] + f[:-1, :-1]  # (n, n)
        cell = np.diff(ye)[:, None] * np.diff(xe)[None, :]
        frac = area / cell
        frac[frac < 1e-9] = 0.0  # rounding of the table differences: empty stays exactly 0
        frac[frac > 1 - 1e-9] = 1.0
        return frac


def _axis_patch(n: int, resized: int, offset: int, size: int, patch: int) -> np.ndarray:
    centre = (np.arange(n) + 0.5) * (resized / n) - offset  # crop coordinates of pixel centres
    idx = np.floor(centre / patch).astype(np.int64)
    idx[(centre < 0) | (centre >= size)] = -1
    return idx


def _interp_axis(a: np.ndarray, at: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``a`` along ``axis`` at fractional indices ``at``."""
    n = a.shape[axis] - 1
    at = np.clip(at, 0.0, n)
    i = np.minimum(np.floor(at).astype(np.int64), max(n - 1, 0))
    t = at - i
    lo, hi = np.take(a, i, axis=axis), np.take(a, np.minimum(i + 1, n), axis=axis)
    shape = [1, 1]
    shape[axis] = -1
    t = t.reshape(shape)
    return lo * (1 - t) + hi * t


def _as_weights(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask has shape {m.shape}; pass a 2-D (H, W) mask")
    if m.dtype == bool:
        return m.astype(np.float64)
    if np.issubdtype(m.dtype, np.floating) and m.size and (m.min() >= 0 and m.max() <= 1):
        return m.astype(np.float64)
    raise ValueError(f"mask of dtype {m.dtype} with values outside [0, 1]; pass a bool mask "
                     "(e.g. np.asarray(Image.open(path)) > 127) or float weights in [0, 1]")


def mask_patch_fraction(mask: np.ndarray, size: int, patch_size: int) -> np.ndarray:
    """Share of each patch covered by ``mask`` (H, W) drawn on the original image:
    (size // patch_size, size // patch_size) float64. See ``PatchGeometry.mask_fraction``."""
    return PatchGeometry.of(np.asarray(mask), size, patch_size).mask_fraction(mask)


__all__ = ["PatchGeometry", "image_size_of", "mask_patch_fraction"]
