"""Patch geometry and overlays on real, non-square radiographs (real-cxr), for every adapter's
image settings: boxes undo resize + centre-crop, masks land on the patches the model sees."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from radinterp.demo_model.config import DemoModelConfig
from radinterp.models.arch import Maira2Scale
from radinterp.models.geometry import PatchGeometry, mask_patch_fraction
from radinterp.models.image import ImagePreprocess, resize_centre_crop
from radinterp.overlay import heatmap_on_pixels, overlay_image, write_overlay
from tests.shared_data import REAL_CXR

LANDSCAPE = "covid_chestxray_cc/images/thnov10p5641g006-c.png"  # 256 x 189, with a lung mask
PORTRAIT = "covid_chestxray_cc/images/41182_2020_203_Fig4_HTML.png"  # 213 x 256, with a lung mask

# (image size, patch size) of every adapter: MAIRA-2, demo, tiny as the tests load it
SETTINGS = {
    "maira2": (ImagePreprocess().size, Maira2Scale().patch_size),
    "demo": (DemoModelConfig().image_size, DemoModelConfig().patch_size),
    "tiny": (112, Maira2Scale().patch_size),
}


def _row(image_file: str) -> dict:
    for line in (REAL_CXR / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["image_file"] == image_file:
            return row
    raise LookupError(image_file)


def _real(image_file: str) -> tuple[Image.Image, np.ndarray]:
    """The radiograph and its lung mask (H, W) bool (255 = lung in real-cxr's masks)."""
    row = _row(image_file)
    img = Image.open(REAL_CXR / image_file)
    img.load()
    lung = np.asarray(Image.open(REAL_CXR / row["mask_file"]).convert("L")) > 200
    assert img.size != (img.size[1], img.size[0]) and lung.shape == (img.size[1], img.size[0])
    return img, lung


def _through_the_model(mask: np.ndarray, size: int, patch: int) -> np.ndarray:
    """Reference: the mask preprocessed as an image by the model's own resize + crop, then
    averaged per patch: (n_side, n_side) in [0, 1]."""
    crop = resize_centre_crop(Image.fromarray(mask.astype(np.uint8) * 255), size)
    m = np.asarray(crop, dtype=np.float64) / 255.0  # (size, size)
    n = size // patch
    return m.reshape(n, patch, n, patch).mean(axis=(1, 3))


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("image_file", [LANDSCAPE, PORTRAIT])
def test_geometry_is_the_preprocessing_crop(image_file, setting):
    size, patch = SETTINGS[setting]
    img, _ = _real(image_file)
    g = PatchGeometry.of(img, size, patch)
    grey = img.convert("L")
    mine = grey.resize((g.resized_width, g.resized_height), Image.Resampling.BICUBIC).crop(
        (g.left, g.top, g.left + size, g.top + size))
    np.testing.assert_array_equal(np.asarray(mine), np.asarray(resize_centre_crop(grey, size)))
    rng = np.random.default_rng(0)
    for w, h in [(40, 64), (1500, 1250), (519, 517), (100, 1000)]:  # odd sizes: same rounding
        other = Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8))
        go = PatchGeometry.of(other, size, patch)
        mine = other.resize((go.resized_width, go.resized_height), Image.Resampling.BICUBIC).crop(
            (go.left, go.top, go.left + size, go.top + size))
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(resize_centre_crop(other, size)))


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("image_file", [LANDSCAPE, PORTRAIT])
def test_rectangle_drawn_on_original_lands_on_its_patches(image_file, setting):
    size, patch = SETTINGS[setting]
    img, _ = _real(image_file)
    w, h = img.size
    rect = np.zeros((h, w), dtype=bool)
    y0, y1, x0, x1 = int(0.3 * h), int(0.55 * h), int(0.2 * w), int(0.5 * w)
    rect[y0:y1, x0:x1] = True
    frac = mask_patch_fraction(rect, size, patch)
    ref = _through_the_model(rect, size, patch)
    np.testing.assert_allclose(frac, ref, atol=0.02)
    g = PatchGeometry.of(img, size, patch)
    boxes = g.patch_boxes()
    inside = ((boxes[..., 0] >= x0) & (boxes[..., 2] <= x1) & (boxes[..., 1] >= y0)
              & (boxes[..., 3] <= y1))
    outside = ((boxes[..., 2] <= x0) | (boxes[..., 0] >= x1) | (boxes[..., 3] <= y0)
               | (boxes[..., 1] >= y1))
    assert inside.any() and outside.any()
    assert (frac[inside] == 1).all() and (frac[outside] == 0).all()
    # area is conserved: the covered patch area equals the rectangle's part inside the crop
    cx0, cy0, cx1, cy1 = g.crop_box()
    seen = (min(x1, cx1) - max(x0, cx0)) * (min(y1, cy1) - max(y0, cy0))
    box_area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    assert (frac * box_area).sum() == pytest.approx(seen, rel=1e-9)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("image_file", [LANDSCAPE, PORTRAIT])
def test_lung_mask_matches_the_models_view_of_it(image_file, setting):
    size, patch = SETTINGS[setting]
    _, lung = _real(image_file)
    frac = mask_patch_fraction(lung, size, patch)
    ref = _through_the_model(lung, size, patch)
    assert 0.1 < frac.mean() < 0.9
    np.testing.assert_allclose(frac, ref, atol=0.02)
    assert np.abs(frac - ref).mean() < 0.002


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("image_file", [LANDSCAPE, PORTRAIT])
def test_patch_boxes_tile_the_crop_inside_the_image(image_file, setting):
    size, patch = SETTINGS[setting]
    img, _ = _real(image_file)
    w, h = img.size
    g = PatchGeometry.of(img, size, patch)
    boxes = g.patch_boxes()
    assert boxes.shape == (size // patch, size // patch, 4)
    assert (boxes[..., 0] >= 0).all() and (boxes[..., 1] >= 0).all()
    assert (boxes[..., 2] <= w + 1e-9).all() and (boxes[..., 3] <= h + 1e-9).all()
    # neighbours share edges: no gap, no overlap
    np.testing.assert_allclose(boxes[:, 1:, 0], boxes[:, :-1, 2])
    np.testing.assert_allclose(boxes[1:, :, 1], boxes[:-1, :, 3])
    x0, y0, x1, y1 = g.crop_box()
    area = ((boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])).sum()
    assert area == pytest.approx((x1 - x0) * (y1 - y0))
    # the short side is kept whole, the long side is cropped about the centre
    short_lo, short_hi, long_lo, long_hi, long_n = (
        (x0, x1, y0, y1, h) if w < h else (y0, y1, x0, x1, w))
    assert short_lo == 0 and short_hi == pytest.approx(min(w, h))
    assert long_lo > 0 and abs((long_lo + long_hi) / 2 - long_n / 2) <= long_n / size
    assert g.patch_box(2, 3) == tuple(boxes[2, 3])
    with pytest.raises(IndexError):
        g.patch_box(g.n_side, 0)
    # every pixel centre lies in the box of the patch it is assigned to
    rows, cols = g.pixel_patches()
    ys, xs = np.arange(h) + 0.5, np.arange(w) + 0.5
    ok = rows >= 0
    assert (ys[ok] >= boxes[rows[ok], 0, 1]).all() and (ys[ok] < boxes[rows[ok], 0, 3]).all()
    ok = cols >= 0
    assert (xs[ok] >= boxes[0, cols[ok], 0]).all() and (xs[ok] < boxes[0, cols[ok], 2]).all()


def test_overlay_colours_exactly_the_active_patch(tmp_path):
    img, _ = _real(LANDSCAPE)
    size, patch = SETTINGS["maira2"]
    g = PatchGeometry.of(img, size, patch)
    heat = np.zeros((g.n_side, g.n_side))
    heat[10, 20] = 3.0
    out = write_overlay(tmp_path / "o.png", img, heat, g, cmap="red", alpha=0.5)
    rgb = np.asarray(Image.open(out)).astype(int)
    assert Image.open(out).size == img.size and rgb.shape == (img.size[1], img.size[0], 3)
    coloured = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])
    x0, y0, x1, y1 = g.patch_box(10, 20)
    ys, xs = np.arange(img.size[1])[:, None] + 0.5, np.arange(img.size[0])[None, :] + 0.5
    in_box = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    assert in_box.sum() > 0
    np.testing.assert_array_equal(coloured, in_box)
    grey = np.asarray(img.convert("L"), dtype=int)  # real-cxr images span 0-255 already
    np.testing.assert_array_equal(rgb[~in_box][:, 0], grey[~in_box])
    assert (rgb[in_box][:, 0] > rgb[in_box][:, 1]).all()  # red on top


def test_overlay_leaves_the_cropped_away_parts_uncoloured():
    img, _ = _real(LANDSCAPE)  # wide: columns at both sides are cut by the centre crop
    g = PatchGeometry.of(img, *SETTINGS["demo"])
    heat = np.arange(g.n_side**2, dtype=float).reshape(g.n_side, g.n_side) + 1.0
    on_pixels = heatmap_on_pixels(heat, g)
    cut = np.isnan(on_pixels)
    x0, _, x1, _ = g.crop_box()
    assert cut[:, 0].all() and cut[:, -1].all() and not cut[:, img.size[0] // 2].any()
    assert abs(cut[0].sum() - (img.size[0] - (x1 - x0))) <= 2
    rgb = np.asarray(overlay_image(img, heat, g, cmap="inferno", alpha=0.7)).astype(int)
    coloured = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])
    assert not coloured[cut].any() and coloured[~cut].mean() > 0.95
    # stronger patches are drawn with more colour weight: compare one pixel row
    grey = np.asarray(img.convert("L"), dtype=float)
    shift = np.abs(rgb.astype(float) - grey[..., None]).sum(-1)  # (H, W)
    rows, cols = g.pixel_patches()
    top, bottom = np.nonzero(rows == 0)[0][0], np.nonzero(rows == g.n_side - 1)[0][0]
    col = np.nonzero(cols == g.n_side // 2)[0][0]
    assert shift[bottom, col] > shift[top, col]


def test_adapter_geometry_and_bad_input(tiny_adapter, tmp_path):
    path = REAL_CXR / PORTRAIT
    g = tiny_adapter.patch_geometry(path)
    assert g == PatchGeometry(213, 256, tiny_adapter.image_cfg.size, tiny_adapter.patch_size)
    assert g.n_side == tiny_adapter.n_patches_side
    assert tiny_adapter.patch_geometry((256, 189)).resized_width > tiny_adapter.image_cfg.size
    with pytest.raises(ValueError, match="bool mask"):
        g.mask_fraction(np.full((256, 213), 255, np.uint8))
    with pytest.raises(ValueError, match="draw the mask on the original"):
        g.mask_fraction(np.zeros((100, 100), bool))
    with pytest.raises(ValueError, match="reshape it to the patch grid"):
        heatmap_on_pixels(np.zeros(g.n_side**2), g)
    with pytest.raises(ValueError, match="multiple of patch size"):
        PatchGeometry(10, 10, 100, 14)
    with pytest.raises(ValueError, match="must end in .png"):
        write_overlay(tmp_path / "o.jpg", path, np.zeros((g.n_side, g.n_side)), g)


def test_demo_patch_targets_unchanged_by_the_move(tmp_path):
    """The demo model's targets now come from the core; on phantoms (square, the model's size)
    they equal the old rule: resize + crop the mask, a patch is 1 where any pixel > 64."""
    from radinterp.data.study import Study
    from radinterp.demo_model.data import cache_patch_targets

    size, patch = SETTINGS["demo"]
    rng = np.random.default_rng(0)
    studies, masks = [], []
    for i, (h, w) in enumerate([(size, size), (size, size), (300, 260)]):
        m = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h - 40), rng.integers(0, w - 40)
        m[y : y + rng.integers(3, 40), x : x + rng.integers(3, 40)] = 255
        Image.fromarray(m).save(tmp_path / f"m{i}.png")
        studies.append(Study(f"s{i}", frontal=Image.fromarray(m),
                             masks={"nodule": str(tmp_path / f"m{i}.png")},
                             meta={"findings": {"nodule": {}}}))
        masks.append(m)
    targets, known = cache_patch_targets(studies, ("nodule",), ImagePreprocess(size=size), patch,
                                         progress=False)
    assert known.all()
    n = size // patch
    for i, m in enumerate(masks):
        got = targets[i, :, 0].numpy().reshape(n, n)
        old = np.asarray(resize_centre_crop(Image.fromarray(m), size), dtype=np.float32)
        old = (old.reshape(n, patch, n, patch).max(axis=(1, 3)) > 64).astype(np.uint8)
        if m.shape == (size, size):
            np.testing.assert_array_equal(got, old)
        else:  # resized: the same patches up to the bicubic blur at the mask's border
            assert np.abs(got.astype(int) - old).sum() <= 2 * n and got.sum() > 0
