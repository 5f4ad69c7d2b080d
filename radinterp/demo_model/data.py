"""Phantom studies -> tensors for training the demo model (pixels cached once, in memory)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from tqdm import tqdm

from radinterp.data.study import Study
from radinterp.models.image import ImagePreprocess, preprocess_image

log = logging.getLogger(__name__)

def planted_targets(studies: list[Study], findings: tuple[str, ...]) -> torch.Tensor:
    """(N, F) float: 1 where the finding was planted in the study's current image."""
    out = torch.zeros(len(studies), len(findings))
    for i, s in enumerate(studies):
        planted = s.meta.get("findings")
        if planted is None:
            raise ValueError(
                f"study {s.study_id!r} has no meta['findings']; the demo model trains on phantom "
                "folders written by radinterp.data.phantoms (radinterp phantoms --out DIR)"
            )
        for j, f in enumerate(findings):
            out[i, j] = float(f in planted)
    return out


def load_studies(data_dir: str | Path, limit: int | None = None) -> list[Study]:
    from radinterp.data.phantoms.writer import load_phantom_studies

    studies = load_phantom_studies(data_dir)
    return studies[:limit] if limit else studies


def cache_pixels(studies: list[Study], cfg: ImagePreprocess, progress: bool = True) -> torch.Tensor:
    """(N, H, W) float16 normalised frontal images (the channel is repeated at use)."""
    out = torch.empty(len(studies), cfg.size, cfg.size, dtype=torch.float16)
    for i, s in enumerate(tqdm(studies, desc="preprocess", disable=not progress)):
        out[i] = preprocess_image(s.frontal, cfg)[0].to(torch.float16)
    return out


def as_rgb(pixels_NHW: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, 3, H, W) float32."""
    return pixels_NHW.float().unsqueeze(1).expand(-1, 3, -1, -1)


def cache_patch_targets(
    studies: list[Study], findings: tuple[str, ...], cfg: ImagePreprocess, patch_size: int,
    progress: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch targets from the phantoms' finding masks.

    Returns ``targets`` (N, P, F) uint8 -- 1 where the finding's mask (pixels > 64) covers any
    of the patch, put on the grid through the image's resize + centre-crop
    (``radinterp.models.geometry``) -- and ``known`` (N, F) bool: False where a planted finding
    has no mask (its patch targets are unknown and carry no loss).
    """
    import numpy as np
    from PIL import Image

    from radinterp.models.geometry import mask_patch_fraction

    side = cfg.size // patch_size
    targets = torch.zeros(len(studies), side * side, len(findings), dtype=torch.uint8)
    known = torch.ones(len(studies), len(findings), dtype=torch.bool)
    for i, s in enumerate(tqdm(studies, desc="patch targets", disable=not progress)):
        planted = s.meta.get("findings") or {}
        for j, f in enumerate(findings):
            if f not in planted:
                continue
            path = s.masks.get(f)
            if not path:
                known[i, j] = False
                continue
            with Image.open(path) as im:
                m = np.asarray(im.convert("L")) > 64  # (H, W) bool, on the original image
            share = mask_patch_fraction(m, cfg.size, patch_size)  # (side, side)
            targets[i, :, j] = torch.from_numpy((share > 0).reshape(-1).astype(np.uint8))
    return targets, known
