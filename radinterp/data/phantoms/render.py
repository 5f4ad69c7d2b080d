"""Film formation: density layers -> 8-bit greyscale radiograph."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from radinterp.data.phantoms.anatomy import Layers
from radinterp.data.phantoms.canvas import Pose, clip


@dataclass(frozen=True)
class Exposure:
    """Acquisition settings of one image."""

    k: float
    """Attenuation scale (higher = more contrast between lung and tissue)."""
    gamma: float
    """Display gamma."""
    lo: float
    """Window floor (in attenuation units)."""
    hi: float
    """Window ceiling."""
    noise: float
    """Quantum-noise standard deviation (fraction of full scale)."""
    grain_seed: int
    """Seed of the noise field, shared by the image and its healthy render."""


def sample_pose(rng: np.random.Generator, view: str) -> Pose:
    """Positioning: AP (portable) films are more rotated and magnified."""
    rot = 2.0 if view == "PA" else 4.0
    return Pose(
        rotation_deg=float(rng.normal(0, rot)),
        shift_x=float(rng.normal(0, 0.02)),
        shift_y=float(rng.normal(0.0, 0.02)),
        zoom=float(rng.uniform(0.92, 1.02) * (1.04 if view == "AP" else 1.0)),
    )


def sample_exposure(rng: np.random.Generator, view: str) -> Exposure:
    return Exposure(
        k=float(rng.uniform(1.2, 1.6)),
        gamma=float(rng.uniform(0.85, 1.25)),
        lo=float(rng.uniform(0.03, 0.08)),
        hi=float(rng.uniform(0.74, 0.84)),
        noise=float(rng.uniform(0.012, 0.03) * (1.4 if view == "AP" else 1.0)),
        grain_seed=int(rng.integers(0, 2**31 - 1)),
    )


@lru_cache(maxsize=8)
def _upsample_matrix(size: int, n: int = 8) -> np.ndarray:
    """(size, n) bilinear interpolation weights from an n-point grid to ``size`` pixels."""
    pos = np.linspace(0, n - 1, size)
    lo = np.minimum(np.floor(pos).astype(int), n - 2)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((size, n), dtype=np.float32)
    m[np.arange(size), lo] = 1 - frac
    m[np.arange(size), lo + 1] = frac
    return m


@lru_cache(maxsize=4)
def _noise(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    fine = g.standard_normal((size, size), dtype=np.float32)  # (S, S)
    m = _upsample_matrix(size)  # (S, 8)
    low = m @ g.standard_normal((8, 8), dtype=np.float32) @ m.T  # (S, S)
    fine.setflags(write=False)
    low.setflags(write=False)
    return fine, low


def compose(layers: Layers, exp: Exposure, marker: np.ndarray | None = None) -> np.ndarray:
    """Density -> uint8 image ``(S, S)``; the same ``exp`` gives the same grain."""
    size = layers.density.shape[0]
    d = layers.density + layers.vessels
    if marker is not None:
        d = d + marker
    fine, low = _noise(size, exp.grain_seed)
    d = d + 0.03 * low
    att = 1.0 - np.exp(-exp.k * clip(d, 0, None))
    att = gaussian_filter(att, sigma=max(0.5, size / 400))
    v = clip((att - exp.lo) / (exp.hi - exp.lo), 0, 1) ** exp.gamma
    v = v + exp.noise * fine * (0.5 + 0.5 * v)
    return (clip(v, 0, 1) * 255 + 0.5).astype(np.uint8)
