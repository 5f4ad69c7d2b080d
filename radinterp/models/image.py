"""MAIRA-2 image preprocessing: greyscale, min-max to 0-255, resize + centre-crop, normalise.

Images arrive as paths (PNG, JPEG, ... through PIL; DICOM through :mod:`radinterp.models.dicom`),
PIL images, numpy arrays or ``pydicom`` datasets; 16-bit and float pixels keep their precision
until :func:`to_greyscale_uint8`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset

from radinterp.models.dicom import is_dicom, read_dicom

# Modes a radiograph can arrive in; anything else is a colour-space encoding we refuse.
_HIGH_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I", "F"}
_CONVERTIBLE_MODES = {"L", "LA", "RGB", "RGBA", "P", "1", "RGBX"}


@dataclass(frozen=True)
class ImagePreprocess:
    """Image preprocessing parameters (RAD-DINO / MAIRA-2 defaults)."""

    size: int = 518
    """Side of the square crop fed to the vision tower (518 for MAIRA-2)."""
    mean: float = 0.5307
    """Normalisation mean (MAIRA-2: 0.5307)."""
    std: float = 0.2583
    """Normalisation std (MAIRA-2: 0.2583)."""
    channels: int = 3
    """Channels the vision tower expects; the greyscale image is repeated."""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"image size must be positive, got {self.size}")
        if self.std <= 0:
            raise ValueError(f"std must be > 0, got {self.std}")


def load_image(image: str | Path | Image.Image | np.ndarray | Dataset) -> Image.Image:
    """Open a path / array / PIL image / pydicom dataset, with errors naming the file and the fix.

    DICOM (a ``.dcm`` name or a DICOM preamble) is read by :func:`radinterp.models.dicom.read_dicom`:
    a mode ``F`` image after the modality and VOI LUTs, MONOCHROME1 inverted.
    """
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, Dataset):
        return read_dicom(image)
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[-1] in (1, 3, 4):
            image = image[..., 0] if image.shape[-1] == 1 else image
        elif image.ndim != 2:
            raise ValueError(
                f"image array has shape {image.shape}; pass a 2-D greyscale array (H, W) "
                "or an (H, W, 3) RGB array"
            )
        return Image.fromarray(image)
    path = Path(image)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path} (check the study's image path)")
    if is_dicom(path):
        return read_dicom(path)
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}; re-export it as PNG, JPEG or DICOM") from exc


def to_greyscale_uint8(image: Image.Image) -> Image.Image:
    """Greyscale + min-max rescale to 0-255 (MAIRA-2's ``_normalize_image``)."""
    if image.mode in _HIGH_DEPTH_MODES:
        arr = np.asarray(image, dtype=np.float64)
    elif image.mode in _CONVERTIBLE_MODES:
        arr = np.asarray(image.convert("L"), dtype=np.float64)
    else:
        raise ValueError(
            f"unsupported image mode {image.mode!r}; pass a greyscale ('L' or 16-bit 'I;16') or "
            "RGB image, e.g. image.convert('L')"
        )
    lo, hi = float(arr.min()), float(arr.max())
    arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    return Image.fromarray(arr.astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB for processors that take RGB; 16-bit / float images are min-max rescaled first."""
    if image.mode in _HIGH_DEPTH_MODES:
        image = to_greyscale_uint8(image)
    return image.convert("RGB")


def resize_crop_plan(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(resized_width, resized_height, left, top) of :func:`resize_centre_crop`: the one place
    its rounding lives (``radinterp.models.geometry`` inverts it)."""
    scale = size / min(width, height)
    nw, nh = max(size, round(width * scale)), max(size, round(height * scale))
    return nw, nh, (nw - size) // 2, (nh - size) // 2


def resize_centre_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the shortest side to ``size`` (bicubic), then centre-crop a square."""
    nw, nh, left, top = resize_crop_plan(*image.size, size)
    image = image.resize((nw, nh), Image.Resampling.BICUBIC)
    return image.crop((left, top, left + size, top + size))


def preprocess_image(image, cfg: ImagePreprocess = ImagePreprocess()) -> torch.Tensor:
    """Full pipeline; returns a (channels, size, size) float32 tensor."""
    img = resize_centre_crop(to_greyscale_uint8(load_image(image)), cfg.size)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)  # (H, W)
    x = (x - cfg.mean) / cfg.std
    return x.unsqueeze(0).expand(cfg.channels, -1, -1).contiguous()  # (C, H, W)
