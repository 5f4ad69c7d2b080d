"""DICOM radiographs as hospitals store them, read through ``pydicom``.

``read_dicom`` turns one single-frame DICOM image into the PIL image the preprocessing
pipeline (:mod:`radinterp.models.image`) takes, following the standard's grey-scale pipeline
(PS3.3 C.11 / PS3.4 N.2.1.1):

1. stored values -> Modality LUT (Rescale Slope / Intercept, or a Modality LUT Sequence);
2. -> VOI LUT: the first VOI LUT Sequence item if there is one, else the first Window
   Centre / Width (``VOILUTFunction`` LINEAR, LINEAR_EXACT or SIGMOID); values outside the
   window are clipped to its ends as the standard says;
3. MONOCHROME1 (lowest value shown white) is inverted within the image's value range, so the
   result always reads like MONOCHROME2.

Grey-scale results come back as a 32-bit float image (PIL mode ``F``): 16-bit stored values
and non-integer rescales keep their precision until the model's own min-max to 0-255
(:func:`radinterp.models.image.to_greyscale_uint8`). Colour images (RGB, YBR_*) come back as
8-bit RGB. Multi-frame files are refused, and a compressed transfer syntax whose decoder is
not installed raises a ``ValueError`` that names the packages to install.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi, apply_windowing, get_decoder

DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
"""File name endings read as DICOM (files with a ``DICM`` preamble are read whatever their name)."""

_GREY = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420")
# pip names of the import names pydicom reports; dependencies pip pulls in anyway are dropped
_PIP_NAMES = {"gdcm": "python-gdcm"}
_IMPLIED = {"numpy"}
_PLUGIN_PREFERENCE = ("pylibjpeg", "pyjpegls", "gdcm")


def is_dicom(path: str | Path) -> bool:
    """True for a ``.dcm`` / ``.dicom`` / ``.dic`` name or a file with the DICOM preamble."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def read_dicom(src: str | Path | Dataset) -> Image.Image:
    """One DICOM radiograph as a mode ``F`` (grey) or ``RGB`` (colour) PIL image.

    Errors are ``ValueError`` naming the file and the fix (not DICOM, no pixel data, several
    frames, an unsupported photometric interpretation, a missing decoder).
    """
    ds, where = _open(src)
    arr = _decode(ds, where)
    pi = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if int(ds.get("SamplesPerPixel", 1) or 1) == 3 and pi in _COLOUR:
        return Image.fromarray(_colour_to_uint8(arr, ds), "RGB")
    if pi not in _GREY:
        raise ValueError(
            f"{where}: photometric interpretation {pi or '(none)'!r} is not read; radiographs are "
            f"one of {', '.join(_GREY + _COLOUR)} (fix: re-export the image as MONOCHROME2)"
        )
    arr = apply_modality_lut(arr, ds)  # (H, W) modality values (float64 when rescaled)
    arr = apply_voi_lut_first(arr, ds)  # (H, W) VOI output
    arr = np.asarray(arr, dtype=np.float64)
    if pi == "MONOCHROME1":  # lowest value is white: mirror within the value range
        arr = arr.max() + arr.min() - arr
    return Image.fromarray(arr.astype(np.float32), "F")


def apply_voi_lut_first(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """The first VOI LUT Sequence item if present, else the first window; else ``arr`` unchanged.

    LUT input values are rounded to integers and clipped to the LUT's range first (the LUT is
    indexed by integer modality values; pydicom would wrap values past 65535).
    """
    seq = ds.get("VOILUTSequence")
    if seq and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]:
        n_entries, first, _ = seq[0].LUTDescriptor
        n_entries = n_entries or 2**16
        idx = np.clip(np.rint(arr).astype(np.int64), first, first + n_entries - 1)  # (H, W)
        return apply_voi(idx, ds)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        return apply_windowing(arr, ds)
    return arr


def _open(src: str | Path | Dataset) -> tuple[Dataset, str]:
    if isinstance(src, Dataset):
        return src, str(getattr(src, "filename", None) or "DICOM dataset")
    path = Path(src)
    fix = "(fix: check the file is a complete DICOM image, e.g. re-export it from the PACS)"
    try:
        try:
            ds = pydicom.dcmread(path)
        except InvalidDicomError:  # no 128-byte preamble: a bare data set, if the name says DICOM
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, force=True)
            if "SOPClassUID" not in ds and "PixelData" not in ds:
                raise InvalidDicomError("no DICOM preamble and no DICOM data elements") from None
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read DICOM file {path}: {exc} {fix}") from exc
    return ds, str(path)


def _decode(ds: Dataset, where: str) -> np.ndarray:
    """The stored pixel values (H, W) or (H, W, 3), after the single-frame and decoder checks."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise ValueError(f"{where} holds no pixel data (SOP class {ds.get('SOPClassUID', '?')}); "
                         "pass the DICOM image file itself, not a report or directory record")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(
            f"{where} is a multi-frame DICOM ({frames} frames); radinterp reads one radiograph per "
            "file (fix: save each frame as its own single-frame file, or pass one frame as an "
            "array, e.g. pydicom.pixels.pixel_array(path, index=0))"
        )
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is not None:
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            raise ValueError(f"{where}: pydicom cannot decode transfer syntax {ts.name} ({ts}) "
                             "(fix: re-export the image uncompressed, Explicit VR Little Endian)") from None
        if not decoder.is_available:
            raise ValueError(missing_decoder_message(where, ts, decoder.missing_dependencies))
    try:
        return ds.pixel_array
    except (RuntimeError, ValueError, NotImplementedError, AttributeError) as exc:
        raise ValueError(f"cannot decode the pixel data of {where}: {exc} (fix: re-export the image "
                         "uncompressed, Explicit VR Little Endian)") from exc


def missing_decoder_message(where: str, ts, missing: list[str]) -> str:
    """A one-line error naming the ``pip install`` that lets pydicom decode ``ts``.

    ``missing`` is pydicom's ``Decoder.missing_dependencies`` ("plugin - requires a and b").
    """
    options: dict[str, list[str]] = {}
    for line in missing:
        m = re.match(r"\s*(\S+) - requires (.+)$", line)
        if m:
            deps = re.split(r", | and ", m.group(2))
            names = [re.split(r"[<>=!~ ]", d.strip(), maxsplit=1)[0] for d in deps]
            options[m.group(1)] = [_PIP_NAMES.get(n, n) for n in names if n and n not in _IMPLIED]
    ranked = sorted(options, key=lambda p: (_PLUGIN_PREFERENCE + (p,)).index(p))
    fixes = [f"pip install {' '.join(options[p])}" for p in ranked if options[p]]
    fix = " or ".join(fixes) if fixes else "re-export the image uncompressed, Explicit VR Little Endian"
    return (f"{where}: the pixel data is compressed as {ts.name} ({ts}) and no decoder for it is "
            f"installed (fix: {fix})")


def _colour_to_uint8(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """(H, W, 3) RGB stored values -> uint8 (pydicom already converted YBR to RGB)."""
    if arr.dtype == np.uint8:
        return arr
    top = 2 ** int(ds.get("BitsStored", 8 * arr.dtype.itemsize)) - 1
    return np.clip(np.rint(arr.astype(np.float64) / top * 255.0), 0, 255).astype(np.uint8)
