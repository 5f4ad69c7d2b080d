"""MAIRA-2 image preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from radinterp.models.image import ImagePreprocess, preprocess_image, resize_centre_crop, to_greyscale_uint8


def test_min_max_rescale_and_normalisation():
    arr = np.full((40, 60), 100, np.uint8)
    arr[:, :30] = 150  # only two values: min-max maps them to 0 and 255
    x = preprocess_image(Image.fromarray(arr), ImagePreprocess(size=28))
    assert x.shape == (3, 28, 28)
    vals = x[0].unique()
    assert torch.isclose(vals.min(), torch.tensor((0 - 0.5307) / 0.2583), atol=1e-4)
    assert torch.isclose(vals.max(), torch.tensor((1 - 0.5307) / 0.2583), atol=1e-4)
    assert torch.equal(x[0], x[2])  # greyscale repeated over channels


def test_resize_shortest_side_then_centre_crop():
    arr = np.zeros((100, 300), np.uint8)
    arr[:, 100:200] = 255  # the centre third is white
    out = np.asarray(resize_centre_crop(Image.fromarray(arr), 50))
    assert out.shape == (50, 50)
    assert out[:, 5:45].min() > 200  # the crop is the white centre


def test_16bit_and_rgb_inputs_are_converted():
    wide = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # up to 65520
    g = np.asarray(to_greyscale_uint8(Image.fromarray(wide)))
    assert g.min() == 0 and g.max() == 255 and len(np.unique(g)) > 200  # no clipping to 255
    rgb = Image.fromarray(np.stack([wide.astype(np.uint8)] * 3, -1))
    assert to_greyscale_uint8(rgb).mode == "L"


def test_wrong_mode_error_says_what_to_pass():
    cmyk = Image.new("CMYK", (32, 32))
    with pytest.raises(ValueError, match=r"convert\('L'\)"):
        preprocess_image(cmyk, ImagePreprocess(size=28))


def test_bad_paths_and_arrays(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        preprocess_image(tmp_path / "missing.png")
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="re-export"):
        preprocess_image(bad)
    with pytest.raises(ValueError, match="2-D greyscale"):
        preprocess_image(np.zeros((2, 3, 4, 5)))
