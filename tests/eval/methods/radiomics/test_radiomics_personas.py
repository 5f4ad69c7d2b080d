"""Lung regions, the oracle twin and the learned (diffusion inpainter) persona, on phantoms and
real radiographs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from eval.methods.radiomics.features import ExtractSettings, extract_image
from eval.methods.radiomics.inpainter import InpainterConfig, paint, train_inpainter
from eval.methods.radiomics.personas import load_arrays
from eval.methods.radiomics.regions import dice, estimate_lungs, load_grey, study_region
from radinterp.data.sources import open_studies
from tests.shared_data import REAL_CXR

SIZE = 64
SETTINGS = ExtractSettings(grids=(1, 2, 3), min_cell_px=3)


@pytest.fixture(scope="module")
def phantom_arrays(phantom_dir):
    studies = list(open_studies(phantom_dir))
    return studies, load_arrays(studies, SIZE, progress=False)


def test_oracle_residual_is_zero_on_a_healthy_study_and_not_on_a_sick_one(phantom_arrays):
    studies, a = phantom_arrays
    assert a.oracle is not None and set(a.region_sources) == {"phantom"}
    normal = next(i for i, s in enumerate(studies) if not s.meta["findings"])
    sick = next(i for i, s in enumerate(studies) if {"consolidation", "pleural_effusion",
                                                      "lung_nodule", "edema"} & set(s.meta["findings"]))
    for i, zero in ((normal, True), (sick, False)):
        own = extract_image(a.images[i].astype(np.float32), a.regions[i], SETTINGS)
        twin = extract_image(a.oracle[i].astype(np.float32), a.healthy_regions[i], SETTINGS)
        assert np.all(own - twin == 0) == zero, studies[i].meta["findings"]


def test_phantom_lungs_follow_the_anatomy(phantom_arrays):
    studies, a = phantom_arrays
    share = a.regions.mean((1, 2))
    assert np.all((share > 0.1) & (share < 0.5))  # two lungs, not the whole film
    big_heart = [i for i, s in enumerate(studies) if "cardiomegaly" in s.meta["findings"]]
    assert big_heart and all((a.regions[i] != a.healthy_regions[i]).any() for i in big_heart)


def test_learned_persona_paints_only_the_region_and_is_deterministic(phantom_arrays):
    _, a = phantom_arrays
    cfg = InpainterConfig(res=32, width=8, train_steps=8, sample_steps=4, batch_size=8)
    model = train_inpainter(a.images[:8].astype(np.float32), a.regions[:8], cfg, progress=False)
    imgs = a.images[:4].astype(np.float32)
    p1, p2 = paint(model, imgs, a.regions[:4], cfg), paint(model, imgs, a.regions[:4], cfg)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(p1[~a.regions[:4]], imgs[~a.regions[:4]])
    assert not np.array_equal(p1[a.regions[:4]], imgs[a.regions[:4]])
    with pytest.raises(ValueError, match="no healthy training images"):
        train_inpainter(imgs[:0], a.regions[:0], cfg, progress=False)


def test_real_regions_use_the_mask_else_an_estimate_close_to_it():
    studies = list(open_studies(REAL_CXR))
    masked = [s for s in studies if s.masks.get("lung")][:6]
    unmasked = next(s for s in studies if not s.masks.get("lung"))
    scores = []
    for s in masked:
        grey = load_grey(s.frontal, SIZE)
        r = study_region(s, grey, SIZE)
        assert r.source == "mask" and r.image.any()
        scores.append(dice(r.image, estimate_lungs(grey)))
    assert np.mean(scores) > 0.5  # the estimate used where no mask exists overlaps the masks
    r = study_region(unmasked, load_grey(unmasked.frontal, SIZE), SIZE)
    assert r.source == "estimate" and 0.05 < r.image.mean() < 0.7


def test_any_size_and_bit_depth_loads(tmp_path):
    ramp = (np.arange(40 * 70).reshape(40, 70) * 9).astype(np.uint16)  # 16-bit, not square
    Image.fromarray(ramp).save(tmp_path / "x16.png")
    g = load_grey(tmp_path / "x16.png", SIZE)
    assert g.shape == (SIZE, SIZE) and g.min() == 0 and g.max() == 255
    with pytest.raises(FileNotFoundError, match="image file not found"):
        load_grey(tmp_path / "missing.png", SIZE)
