"""pyradiomics first-order and 2-D shape features over sub-patch grids of a region.

The region (the lung fields) is cut into ``g x g`` cells over its bounding box for every grid
size ``g`` (1x1, 2x2, 3x3 by default: 14 cells); each cell's mask is the region inside that
cell. Every cell gets pyradiomics' first-order (18) and ``shape2D`` (9) features, computed with
``force2D`` by the feature classes themselves (the extractor's per-call set-up costs 4x the
features on a 224 px image). A cell the region does not reach (e.g. the mediastinum column of a
3x3 grid) has no pixels: its features are 0 (an empty region has no area and no intensities)
and it is counted in :func:`empty_cells`.

A grid the region cannot hold (its bounding box narrower than ``grid * min_cell_px`` pixels
on a side) is an :class:`radinterp.errors.InputError` naming the fix.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from eval.methods.masks import roi_grid_cells
from radinterp.errors import InputError

FEATURE_CLASSES = ("firstorder", "shape2D")
"""pyradiomics feature classes used (the paper's first-order and shape features)."""


@dataclass(frozen=True)
class ExtractSettings:
    """How one image's region is cut and measured (picklable: sent to worker processes)."""

    grids: tuple[int, ...] = (1, 2, 3)
    """Sub-patch grid sizes: ``g`` cuts the region's bounding box into ``g x g`` cells."""
    bin_width: float = 8.0
    """pyradiomics ``binWidth`` on the 0-255 intensity scale (entropy / uniformity)."""
    min_cell_px: int = 4
    """Smallest cell side in pixels a grid may produce; finer grids raise."""

    def __post_init__(self) -> None:
        if not self.grids or any(int(g) < 1 for g in self.grids):
            raise ValueError(f"grids must be positive sizes like (1, 2, 3), got {self.grids}")
        if len(set(self.grids)) != len(self.grids):
            raise ValueError(f"grids {self.grids} repeat a size; list each once, e.g. (1, 2, 3)")
        if self.bin_width <= 0:
            raise ValueError(f"bin_width must be > 0, got {self.bin_width}; pass e.g. 8")
        if self.min_cell_px < 2:
            raise ValueError(f"min_cell_px must be >= 2, got {self.min_cell_px}")

    @property
    def n_cells(self) -> int:
        return sum(g * g for g in self.grids)


def _quiet_pyradiomics() -> None:
    """pyradiomics logs at ERROR only; SimpleITK on one thread (parallelism is over processes)."""
    import radiomics
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)


def _feature_classes() -> list[type]:
    from radiomics import firstorder, shape2D

    return [firstorder.RadiomicsFirstOrder, shape2D.RadiomicsShape2D]


def base_feature_names() -> list[str]:
    """Names of the per-cell features, ``"<class>_<Feature>"``, in extraction order."""
    out = []
    for cls, short in zip(_feature_classes(), FEATURE_CLASSES, strict=True):
        out += [f"{short}_{n}" for n in sorted(cls.getFeatureNames()) if not
                cls.getFeatureNames()[n]]  # value True = deprecated
    return out


def cell_names(grids: tuple[int, ...]) -> list[str]:
    """``"g{g}r{row}c{col}"`` for every cell of every grid, row-major."""
    return [f"g{g}r{r}c{c}" for g in grids for r in range(g) for c in range(g)]


def feature_names(settings: ExtractSettings) -> list[str]:
    """Names of the ``n_cells * n_base`` features of one image, cell-major."""
    return [f"{cell}:{b}" for cell in cell_names(settings.grids) for b in base_feature_names()]


def grid_cells(mask: np.ndarray, grids: tuple[int, ...], min_cell_px: int = 4) -> list[np.ndarray]:
    """Boolean cell masks (each (H, W)) of ``mask`` cut on its bounding box into ``g x g``
    cells for each grid size, in :func:`cell_names` order (the frame's
    :func:`eval.methods.masks.roi_grid_cells`; too fine a grid raises naming the fix)."""
    return [c for g in grids for c in roi_grid_cells(mask, g, min_cell_px)]


def _cell_features(image: np.ndarray, cell: np.ndarray, bin_width: float,
                   n_base: int) -> np.ndarray:
    """(n_base,) pyradiomics features of one cell; zeros for a cell without pixels."""
    import SimpleITK as sitk

    if cell.sum() < 2:  # pyradiomics needs 2+ pixels for its shape mesh
        return np.zeros(n_base, np.float64)
    rows, cols = np.flatnonzero(cell.any(1)), np.flatnonzero(cell.any(0))
    sl = np.s_[max(rows[0] - 1, 0):rows[-1] + 2, max(cols[0] - 1, 0):cols[-1] + 2]
    im = sitk.GetImageFromArray(np.ascontiguousarray(image[sl], np.float32))
    ma = sitk.GetImageFromArray(np.ascontiguousarray(cell[sl], np.uint8))
    out: list[float] = []
    for cls in _feature_classes():
        f = cls(im, ma, force2D=True, binWidth=bin_width, label=1)
        f.enableAllFeatures()
        vals = f.execute()
        out += [float(vals[k]) for k in sorted(vals)]
    return np.nan_to_num(np.asarray(out, np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def extract_image(image: np.ndarray, mask: np.ndarray, settings: ExtractSettings) -> np.ndarray:
    """(n_cells * n_base,) features of ``image`` (H, W) on 0-255 inside boolean ``mask`` (H, W)."""
    image, mask = np.asarray(image), np.asarray(mask).astype(bool)
    if image.ndim != 2 or image.shape != mask.shape:
        raise InputError(f"image {image.shape} and mask {mask.shape} must be equal 2-D shapes",
                         "resize the mask to the image (nearest neighbour)")
    _quiet_pyradiomics()
    n_base = len(base_feature_names())
    cells = grid_cells(mask, settings.grids, settings.min_cell_px)
    return np.concatenate([_cell_features(image, c, settings.bin_width, n_base) for c in cells])


def empty_cells(mask: np.ndarray, settings: ExtractSettings) -> int:
    """How many cells of ``mask``'s grids hold fewer than 2 region pixels (features 0)."""
    return sum(int(c.sum() < 2) for c in grid_cells(mask, settings.grids, settings.min_cell_px))
