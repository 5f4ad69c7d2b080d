"""Per-study maps of the fingerprint: each cell's share of a finding's logit, on a pixel grid.

A kept feature belongs to one cell of one grid (``g{g}r{r}c{c}:<feature>``, residuals
prefixed ``resid:``). A cell's value for finding k is the sum of its features' terms
``W_kj * u_j * x_j``; the pixel map adds, at every region pixel, the values of the cells
(one per grid) covering it; the map is then area-averaged to ``side x side``.
"""

from __future__ import annotations

import numpy as np

from eval.methods.radiomics.features import ExtractSettings, cell_names, grid_cells

RESIDUAL_PREFIX = "resid:"


def named_features(base: list[str], with_persona: bool) -> list[str]:
    """Names of the columns of :func:`feature_matrix` (own, then residuals)."""
    return base + ([RESIDUAL_PREFIX + n for n in base] if with_persona else [])


def cell_index(names: list[str], settings: ExtractSettings) -> np.ndarray:
    """(F,) index into :func:`cell_names` of each named feature's cell."""
    where = {c: i for i, c in enumerate(cell_names(settings.grids))}
    return np.array([where[n.removeprefix(RESIDUAL_PREFIX).split(":", 1)[0]] for n in names])


def pool(img: np.ndarray, side: int) -> np.ndarray:
    """(K, S, S) -> (K, side, side) area mean (S need not be a multiple of ``side``)."""
    k, s, _ = img.shape
    edges = np.linspace(0, s, side + 1).round().astype(int)
    out = np.zeros((k, side, side), np.float32)
    for i in range(side):
        for j in range(side):
            out[:, i, j] = img[:, edges[i]:edges[i + 1], edges[j]:edges[j + 1]].mean((1, 2))
    return out


def contribution_map(contrib: np.ndarray, cells_of: np.ndarray, region: np.ndarray,
                     settings: ExtractSettings, side: int) -> np.ndarray:
    """(K, side, side) map of one study from its terms ``contrib`` (K, F), the features'
    cells ``cells_of`` (F,) and its lung ``region`` (S, S)."""
    cells = grid_cells(region, settings.grids, settings.min_cell_px)
    per_cell = np.zeros((contrib.shape[0], len(cells)), np.float32)  # (K, n_cells)
    np.add.at(per_cell.T, cells_of, contrib.T)
    stack = np.stack(cells).astype(np.float32)  # (n_cells, S, S)
    pixels = np.tensordot(per_cell, stack, axes=(1, 0))  # (K, S, S)
    return pool(pixels, side)
