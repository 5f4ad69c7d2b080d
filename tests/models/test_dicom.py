"""DICOM radiographs (written here from the shared real radiographs) read like their PNGs.

What is exact: MAIRA-2's preprocessing min-max rescales before quantising to 8 bits, so any
stored encoding that is an increasing affine map of the PNG's values with integer (or binary
fraction) coefficients -- 16-bit scaling, integer rescale slope / intercept, a MONOCHROME1
inversion, a linear VOI LUT -- gives bit-identical model pixels: every intermediate is an
integer exactly representable in float32, and a correctly rounded division of (k a) / (k b)
equals a / b. A non-binary slope (0.1) or a window centre / width formula adds float rounding,
which can move a pixel to the neighbouring 8-bit level: there we allow one level (1/255).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import (
    HTJ2K, ExplicitVRLittleEndian, JPEGLosslessSV1, JPEGLSLossless, RLELossless,
    SecondaryCaptureImageStorage, generate_uid,
)

from radinterp.capture import CaptureConfig, run_capture
from radinterp.data.sources import image_problem, open_studies
from radinterp.models.dicom import is_dicom
from radinterp.models.image import ImagePreprocess, load_image, preprocess_image, to_greyscale_uint8
from radinterp.store import open_store
from tests.shared_data import REAL_CXR

# two non-square real radiographs whose values do not span 0-255 (so min-max does work)
IMAGES = ("hannover_covid/images/6b5af975.png", "hannover_covid/images/26e8db49.png")
CFG = ImagePreprocess(size=112)
ONE_LEVEL = 1.0 / 255 / CFG.std + 1e-5  # one 8-bit grey level in normalised units


def png_values(i: int = 0) -> np.ndarray:
    return np.asarray(Image.open(REAL_CXR / IMAGES[i]), dtype=np.int64)  # (H, W) 0..255


def write_dicom(path: Path, stored: np.ndarray, pi: str = "MONOCHROME2", bits: int = 16,
                **tags) -> Path:
    """A single-frame DX file with ``stored`` as its pixel values plus ``tags``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "DX"
    dtype = np.uint8 if bits <= 8 else np.uint16
    ds.set_pixel_data(stored.astype(dtype), pi, bits)
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def voi_lut(first: int, data: list[int]) -> list[Dataset]:
    """A VOI LUT Sequence item as files carry it: 16-bit entries in OW little-endian bytes."""
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [len(data) % 65536, first, 16])  # 0 means 65536 entries
    item.add_new("LUTData", "OW", np.asarray(data, dtype="<u2").tobytes())
    return [item]


def model_pixels(image) -> torch.Tensor:
    return preprocess_image(image, CFG)  # (3, 112, 112)


def max_levels(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) * CFG.std * 255


# (stored values from the PNG's p, photometric interpretation, bits stored, extra tags)
EXACT = {
    "16-bit MONOCHROME2": (lambda p: p * 257, "MONOCHROME2", 16, {}),
    "12-bit MONOCHROME2": (lambda p: p * 16, "MONOCHROME2", 12, {}),
    "rescale slope 2, intercept -1024": (
        lambda p: p * 257, "MONOCHROME2", 16, {"RescaleSlope": 2, "RescaleIntercept": -1024}),
    "MONOCHROME1 inverted, rescaled": (
        lambda p: 65535 - p * 257, "MONOCHROME1", 16, {"RescaleSlope": 0.5, "RescaleIntercept": 100}),
    "linear VOI LUT sequence": (
        lambda p: p + 1000, "MONOCHROME2", 16, {"VOILUTSequence": voi_lut(1000, [257 * i for i in range(256)])}),
}
WITHIN_ONE_LEVEL = {
    "rescale slope 0.1, intercept -7.3": (
        lambda p: p * 257, "MONOCHROME2", 16, {"RescaleSlope": 0.1, "RescaleIntercept": -7.3}),
    "window wider than the data": (
        lambda p: p * 257, "MONOCHROME2", 16, {"WindowCenter": 30000, "WindowWidth": 70000}),
    "MONOCHROME1 with a window, rescaled": (
        lambda p: 4095 - p * 16, "MONOCHROME1", 12,
        {"RescaleSlope": 1, "RescaleIntercept": -2048, "WindowCenter": 0, "WindowWidth": 4096}),
}


@pytest.mark.parametrize("name", list(EXACT))
def test_model_pixels_equal_the_png_path(tmp_path, name):
    make, pi, bits, tags = EXACT[name]
    for i in range(len(IMAGES)):
        dcm = write_dicom(tmp_path / f"{i}.dcm", make(png_values(i)), pi, bits, **tags)
        assert load_image(dcm).mode == "F"
        torch.testing.assert_close(model_pixels(dcm), model_pixels(REAL_CXR / IMAGES[i]), rtol=0, atol=0)


@pytest.mark.parametrize("name", list(WITHIN_ONE_LEVEL))
def test_model_pixels_within_one_grey_level_of_the_png_path(tmp_path, name):
    make, pi, bits, tags = WITHIN_ONE_LEVEL[name]
    dcm = write_dicom(tmp_path / "x.dcm", make(png_values()), pi, bits, **tags)
    assert max_levels(model_pixels(dcm), model_pixels(REAL_CXR / IMAGES[0])) <= 1 + 1e-3


def test_sixteen_bits_are_kept_until_the_min_max(tmp_path):
    rng = np.random.default_rng(0)
    stored = png_values() * 16 + rng.integers(0, 16, png_values().shape)  # 12 bits of real detail
    dcm = write_dicom(tmp_path / "x.dcm", stored, bits=12)
    s = stored.astype(np.float64)
    want = ((s - s.min()) / (s.max() - s.min()) * 255).astype(np.uint8)  # MAIRA-2's min-max
    got = np.asarray(to_greyscale_uint8(load_image(dcm)))
    np.testing.assert_array_equal(got, want)
    coarse = np.asarray(to_greyscale_uint8(Image.fromarray((stored >> 4).astype(np.uint8))))
    assert (got != coarse).mean() > 0.2  # reading at 8 bits first would have lost this detail


def test_a_narrow_window_clips_as_the_standard_says(tmp_path):
    stored = png_values() * 257
    modality = stored * 1.0 - 500  # RescaleIntercept -500
    c, w = 30000.0, 12001.0
    dcm = write_dicom(tmp_path / "x.dcm", stored, RescaleSlope=1, RescaleIntercept=-500,
                      WindowCenter=c, WindowWidth=w)
    # PS3.3 C.11.2.1.2.1 (LINEAR), output range mapped to [0, 1]
    lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    want = np.clip((modality - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)
    want[modality <= lo], want[modality > hi] = 0.0, 1.0
    assert (modality <= lo).mean() > 0.05 and (modality > hi).mean() > 0.05  # it does clip
    got = np.asarray(load_image(dcm), dtype=np.float64)
    got = (got - got.min()) / (got.max() - got.min())
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_a_nonlinear_voi_lut_is_looked_up_and_clipped(tmp_path):
    p = png_values()
    first, n = 40, 150  # values below 40 take entry 0, above 189 the last entry
    table = [round(65535 * (i / (n - 1)) ** 0.5) for i in range(n)]
    dcm = write_dicom(tmp_path / "x.dcm", p, VOILUTSequence=voi_lut(first, table),
                      WindowCenter=128, WindowWidth=10)  # the LUT wins over the window
    want = np.asarray(table)[np.clip(p - first, 0, n - 1)]
    np.testing.assert_array_equal(np.asarray(load_image(dcm)), want.astype(np.float32))


def test_rgb_dicom_reads_like_the_greyscale_png(tmp_path):
    p = png_values()
    dcm = write_dicom(tmp_path / "x.dcm", np.stack([p] * 3, -1), "RGB", 8)
    assert load_image(dcm).mode == "RGB"
    torch.testing.assert_close(model_pixels(dcm), model_pixels(REAL_CXR / IMAGES[0]), rtol=0, atol=0)


def test_dicom_without_suffix_is_recognised_by_its_preamble(tmp_path):
    dcm = write_dicom(tmp_path / "x.dcm", png_values() * 257)
    bare = tmp_path / "IM0001"
    shutil.copy(dcm, bare)
    assert is_dicom(bare) and not is_dicom(REAL_CXR / IMAGES[0])
    torch.testing.assert_close(model_pixels(bare), model_pixels(dcm), rtol=0, atol=0)


def test_multi_frame_and_non_images_are_refused_with_the_fix(tmp_path):
    frames = np.stack([png_values()] * 2)  # (2, H, W)
    multi = write_dicom(tmp_path / "multi.dcm", frames, bits=8)
    with pytest.raises(ValueError, match=r"multi-frame DICOM \(2 frames\).*fix: save each frame"):
        load_image(multi)
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a dicom file at all")
    with pytest.raises(ValueError, match="cannot read DICOM file.*fix"):
        load_image(broken)


def _undecodable_syntax():
    for uid in (JPEGLosslessSV1, JPEGLSLossless, HTJ2K, RLELossless):
        if not get_decoder(uid).is_available:
            return uid
    pytest.skip("every compressed transfer syntax has a decoder installed here")


def test_compressed_pixels_without_a_decoder_name_the_package(tmp_path):
    uid = _undecodable_syntax()
    path = write_dicom(tmp_path / "x.dcm", png_values(), bits=8)
    from pydicom import dcmread

    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = uid
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3" + bytes(64)])  # a (fake) compressed frame
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(RuntimeError):  # pydicom itself cannot decode it here
        dcmread(path).pixel_array
    with pytest.raises(ValueError) as err:
        load_image(path)
    msg = str(err.value)
    assert uid.name in msg and "no decoder" in msg and "fix: pip install pylibjpeg pylibjpeg-" in msg


@pytest.fixture
def dicom_folder(tmp_path) -> Path:
    """An image-folder (metadata.jsonl) of two DICOM studies, and the same with the PNGs."""
    for kind in ("dicom", "png"):
        (tmp_path / kind).mkdir()
    rows_d, rows_p = [], []
    for i, rel in enumerate(IMAGES):
        p = png_values(i)
        if i == 0:
            write_dicom(tmp_path / "dicom" / "a.dcm", 4095 - p * 16, "MONOCHROME1", 12,
                        RescaleSlope=2, RescaleIntercept=-4096)
        else:
            write_dicom(tmp_path / "dicom" / "b.dcm", p * 257, VOILUTSequence=voi_lut(0, list(range(65536))))
        shutil.copy(REAL_CXR / rel, tmp_path / "png" / f"{'ab'[i]}.png")
        row = {"study_id": f"s{i}", "view": "PA", "labels": "No Finding", "report_text": ""}
        rows_d.append({**row, "image_file": f"{'ab'[i]}.dcm"})
        rows_p.append({**row, "image_file": f"{'ab'[i]}.png"})
    for kind, rows in (("dicom", rows_d), ("png", rows_p)):
        (tmp_path / kind / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_a_folder_of_dicom_studies_is_captured_like_its_pngs(tmp_path, dicom_folder, tiny_adapter):
    studies = list(open_studies(dicom_folder / "dicom"))
    assert [s.study_id for s in studies] == ["s0", "s1"]
    assert all(image_problem(s) is None for s in studies)
    site = "lm.blocks.1.resid_post"
    stores = {}
    for kind in ("dicom", "png"):
        cfg = CaptureConfig(model="tiny", data=str(dicom_folder / kind), out=str(tmp_path / f"acts_{kind}"),
                            sites=[site], dtype="float32", batch_size=2, progress=False)
        res = run_capture(cfg, adapter=tiny_adapter)
        assert res.studies_captured == 2 and res.studies_skipped == 0
        stores[kind] = open_store(tmp_path / f"acts_{kind}")
    n = stores["png"].num_tokens()
    assert stores["dicom"].num_tokens() == n > 2 * tiny_adapter.n_image_tokens
    torch.testing.assert_close(stores["dicom"].get_rows(site, np.arange(n)),
                               stores["png"].get_rows(site, np.arange(n)), rtol=0, atol=0)
