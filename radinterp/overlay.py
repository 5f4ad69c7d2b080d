"""Heatmaps on the patch grid drawn over the original radiograph (PNG), with PIL and numpy.

A value per patch (an SAE feature's activation, a probe score) is put back on the original
pixels through ``PatchGeometry`` (undoing resize and centre-crop), coloured with a colour map
and alpha-blended over the greyscale radiograph. Each pixel takes the value of the patch its
centre falls in; pixels the crop cut away, and patches at or below ``vmin``, stay uncoloured.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from radinterp.models.geometry import PatchGeometry
from radinterp.models.image import load_image, to_greyscale_uint8

# Colour maps as evenly spaced RGB anchors (0-255), linearly interpolated; inferno and
# viridis are 8-anchor approximations of matplotlib's maps of those names.
_CMAPS: dict[str, np.ndarray] = {
    "inferno": np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99],
                         [212, 72, 66], [245, 125, 21], [250, 193, 39], [252, 255, 164]]),
    "viridis": np.array([[68, 1, 84], [70, 50, 127], [54, 92, 141], [39, 127, 142],
                         [31, 161, 135], [74, 194, 109], [159, 218, 58], [253, 231, 37]]),
    "hot": np.array([[11, 0, 0], [255, 0, 0], [255, 255, 0], [255, 255, 255]]),
    "red": np.array([[255, 0, 0], [255, 0, 0]]),
}


def colormap(name: str, values: np.ndarray) -> np.ndarray:
    """RGB float (..., 3) in [0, 255] for ``values`` in [0, 1]. Built-in maps: inferno, viridis,
    hot, red; other names come from matplotlib when it is installed."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if name in _CMAPS:
        anchors = _CMAPS[name].astype(np.float64)
        grid = np.linspace(0.0, 1.0, len(anchors))
        return np.stack([np.interp(v, grid, anchors[:, c]) for c in range(3)], axis=-1)
    try:
        import matplotlib
    except ImportError:
        raise ValueError(f"unknown colour map {name!r}; use one of {', '.join(_CMAPS)} "
                         "(or pip install matplotlib for its maps)") from None
    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colour map {name!r}; use one of {', '.join(_CMAPS)} or a "
                         "matplotlib colour map name") from None
    return np.asarray(cmap(v))[..., :3] * 255.0


def heatmap_on_pixels(heat: np.ndarray, geometry: PatchGeometry) -> np.ndarray:
    """(n_side, n_side) patch values -> (H, W) float64 on the original pixels, NaN where the
    pixel's centre lies outside the crop."""
    heat = np.asarray(heat, dtype=np.float64)
    n = geometry.n_side
    if heat.shape != (n, n):
        if heat.size == n * n:
            raise ValueError(f"heatmap has shape {heat.shape}; reshape it to the patch grid "
                             f"({n}, {n}) (row-major, as image tokens are ordered)")
        raise ValueError(f"heatmap has shape {heat.shape} but the model's patch grid is "
                         f"({n}, {n}); pass one value per patch of one image")
    rows, cols = geometry.pixel_patches()  # (H,), (W,)
    out = heat[np.clip(rows, 0, n - 1)[:, None], np.clip(cols, 0, n - 1)[None, :]]  # (H, W)
    out[(rows < 0)[:, None] | (cols < 0)[None, :]] = np.nan
    return out


def overlay_image(
    image, heat: np.ndarray, geometry: PatchGeometry, *, cmap: str = "inferno",
    alpha: float = 0.6, vmin: float | None = None, vmax: float | None = None,
) -> Image.Image:
    """The radiograph (greyscale, original size) with ``heat`` (n_side, n_side) blended on top.

    Values are scaled to [0, 1] by ``vmin`` (default: 0, or the minimum when negative) and
    ``vmax`` (default: the maximum); a pixel's colour weight is ``alpha`` times its scaled
    value, so patches at ``vmin`` leave the radiograph untouched. Returns an RGB image.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    grey = np.asarray(to_greyscale_uint8(load_image(image)), dtype=np.float64)  # (H, W)
    if grey.shape != (geometry.height, geometry.width):
        raise ValueError(f"image is {grey.shape[1]}x{grey.shape[0]} but the geometry was built "
                         f"for {geometry.width}x{geometry.height}; build it with "
                         "PatchGeometry.of(image, ...)")
    heat = np.asarray(heat, dtype=np.float64)
    on_pixels = heatmap_on_pixels(heat, geometry)  # (H, W), checks the grid shape
    lo = min(0.0, float(heat.min())) if vmin is None else vmin
    hi = float(heat.max()) if vmax is None else vmax
    scaled = (on_pixels - lo) / (hi - lo) if hi > lo else None
    rgb = np.repeat(grey[..., None], 3, axis=-1)  # (H, W, 3)
    if scaled is not None:
        weight = alpha * np.nan_to_num(np.clip(scaled, 0.0, 1.0), nan=0.0)[..., None]  # (H, W, 1)
        rgb = rgb * (1 - weight) + colormap(cmap, np.nan_to_num(scaled, nan=0.0)) * weight
    return Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8), mode="RGB")


def write_overlay(
    path: str | Path, image, heat: np.ndarray, geometry: PatchGeometry, **kwargs
) -> Path:
    """Write ``overlay_image(image, heat, geometry, **kwargs)`` as a PNG (atomic: temp + rename)."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"overlay path {path} must end in .png")
    img = overlay_image(image, heat, geometry, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        img.save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


__all__ = ["colormap", "heatmap_on_pixels", "overlay_image", "write_overlay"]
