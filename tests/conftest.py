"""Shared fixtures: a tiny MAIRA-2-shaped model and synthetic studies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from radinterp.data import Study


@pytest.fixture(scope="session")
def tiny_adapter():
    from radinterp.models import load_adapter

    torch.manual_seed(0)
    return load_adapter("tiny", image_size=112)


def _radiograph(h: int = 300, w: int = 250, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = 120 + 60 * np.cos(xx / w * np.pi) * np.sin(yy / h * np.pi)
    return Image.fromarray(np.clip(base + rng.normal(0, 10, (h, w)), 0, 255).astype(np.uint8))


@pytest.fixture
def radiograph():
    return _radiograph


@pytest.fixture
def full_study() -> Study:
    img = _radiograph()
    return Study(
        "s-full",
        frontal=img,
        lateral=_radiograph(seed=1),
        prior_frontal=_radiograph(seed=2),
        prior_report="Small left pleural effusion.",
        indication="Shortness of breath.",
        technique="PA and lateral views of the chest.",
        comparison="Radiograph from two days prior.",
        report="The left pleural effusion has resolved. No pneumothorax.",
    )
