"""SAE config validation: errors that name the fix."""

from __future__ import annotations

import pytest

from radinterp.sae import SAEConfig
from sae_training.config import TrainConfig


def test_widths_default_to_d_sae() -> None:
    assert SAEConfig(d_in=8, d_sae=32, k=4).widths == [32]
    assert TrainConfig(d_sae=32, k=4).widths == [32]


@pytest.mark.parametrize(
    ("widths", "match"),
    [([16, 8, 32], "strictly increasing.*--widths 8,16,32"),
     ([8, 16], "must equal d_sae=32.*--widths 8,16,32"),
     ([0, 32], "positive"),
     ([8, 8, 32], "strictly increasing")],
)
def test_bad_widths_name_the_fix(widths: list[int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SAEConfig(d_in=8, d_sae=32, k=4, widths=widths)
    with pytest.raises(ValueError, match=match):
        TrainConfig(d_sae=32, k=4, widths=widths)


def test_k_larger_than_d_sae_is_refused() -> None:
    with pytest.raises(ValueError, match="k=64 is larger than d_sae=32"):
        SAEConfig(d_in=8, d_sae=32, k=64)
    with pytest.raises(ValueError, match="smaller --k"):
        TrainConfig(d_sae=32, k=64)


def test_unknown_choices_list_valid_ones() -> None:
    with pytest.raises(ValueError, match="constant, linear_decay, cosine"):
        TrainConfig(d_sae=32, k=4, lr_schedule="step")
    with pytest.raises(ValueError, match="stop, skip"):
        TrainConfig(d_sae=32, k=4, on_nonfinite="ignore")


def test_linear_decay_schedule() -> None:
    cfg = TrainConfig(d_sae=32, k=4, warmup_steps=10, decay_fraction=0.5)
    assert cfg.lr_multiplier(0, 100) == pytest.approx(0.1)
    assert cfg.lr_multiplier(20, 100) == 1.0
    assert cfg.lr_multiplier(75, 100) == pytest.approx(0.5)
