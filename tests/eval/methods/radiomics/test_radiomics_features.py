"""pyradiomics features over sub-patch grids, and their parallel extraction (real runs)."""

from __future__ import annotations

import numpy as np
import pytest

from eval.methods.radiomics.features import (
    ExtractSettings,
    base_feature_names,
    empty_cells,
    extract_image,
    feature_names,
)
from eval.methods.radiomics.parallel import extract_many
from radinterp.errors import InputError

SETTINGS = ExtractSettings(grids=(1, 2), bin_width=8.0)


def _feature(x: np.ndarray, settings: ExtractSettings, cell: str, name: str) -> float:
    return float(x[feature_names(settings).index(f"{cell}:{name}")])


def _lungs(size: int = 48) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[6:42, 4:16] = True
    m[6:42, 32:44] = True
    return m


def test_features_measure_the_region_not_the_rest():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (48, 48)).astype(np.float32)
    mask = _lungs()
    img[mask] = 100.0  # the region is flat grey; everything outside is noise
    x = extract_image(img, mask, SETTINGS)
    assert x.shape == (5 * len(base_feature_names()),)
    assert _feature(x, SETTINGS, "g1r0c0", "firstorder_Mean") == pytest.approx(100.0)
    assert _feature(x, SETTINGS, "g1r0c0", "firstorder_Variance") == pytest.approx(0.0, abs=1e-9)
    assert _feature(x, SETTINGS, "g1r0c0", "shape2D_PixelSurface") == pytest.approx(mask.sum())
    # each 2x2 cell holds a quarter of the two lungs
    quarters = [_feature(x, SETTINGS, f"g2r{r}c{c}", "shape2D_PixelSurface") for r in (0, 1) for c in (0, 1)]
    assert sum(quarters) == pytest.approx(mask.sum())


def test_a_lesion_moves_first_order_features_of_its_cell_only():
    mask = _lungs()
    img = np.full((48, 48), 60.0, np.float32)
    sick = img.copy()
    sick[30:38, 8:16] = 200.0  # bottom-left cell of the 2x2 grid
    d = extract_image(sick, mask, SETTINGS) - extract_image(img, mask, SETTINGS)
    names = feature_names(SETTINGS)
    moved = {n.split(":")[0] for n, v in zip(names, d, strict=True) if abs(v) > 1e-9}
    assert moved == {"g1r0c0", "g2r1c0"}


def test_empty_cells_are_zero_and_counted():
    mask = _lungs()
    s = ExtractSettings(grids=(3,), min_cell_px=4)
    x = extract_image(np.full((48, 48), 50.0, np.float32), mask, s)
    per_cell = x.reshape(9, -1)
    assert empty_cells(mask, s) == 3  # the middle column is mediastinum
    assert np.all(per_cell[[1, 4, 7]] == 0) and np.all(per_cell[[0, 2]].any(1))


@pytest.mark.parametrize("mask, message", [
    (np.zeros((48, 48), bool), "region mask is empty"),
    (np.pad(np.ones((6, 6), bool), 21), "cannot hold a 2 x 2 grid"),
])
def test_bad_regions_raise_with_the_fix(mask, message):
    with pytest.raises(InputError, match=message) as err:
        extract_image(np.zeros((48, 48), np.float32), mask, SETTINGS)
    assert "(fix: " in str(err.value)


def test_bad_settings_and_shapes_raise():
    with pytest.raises(ValueError, match="repeat a size"):
        ExtractSettings(grids=(1, 1))
    with pytest.raises(ValueError, match="positive sizes"):
        ExtractSettings(grids=(0,))
    with pytest.raises(InputError, match="equal 2-D shapes"):
        extract_image(np.zeros((48, 40)), np.ones((48, 48), bool), SETTINGS)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        extract_many([], SETTINGS, workers=0)


def test_two_workers_give_the_one_worker_features():
    rng = np.random.default_rng(1)
    jobs = [(rng.uniform(0, 255, (48, 48)).astype(np.float32), _lungs()) for _ in range(6)]
    one = extract_many(jobs, SETTINGS, workers=1, chunk=2, progress=False)
    two = extract_many(iter(jobs), SETTINGS, workers=2, chunk=2, progress=False)
    assert one.shape == (6, len(feature_names(SETTINGS)))
    np.testing.assert_array_equal(one, two)
    assert not np.array_equal(one[0], one[1])  # different images, different rows, same order
