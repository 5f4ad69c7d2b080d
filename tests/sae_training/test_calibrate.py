"""The saved SAE is the SAE we trained: its JumpReLU threshold is calibrated on held-out rows
so that its L0 and explained variance match the BatchTopK form it was trained as."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from radinterp.sae import SAEConfig, SparseAutoencoder, load_sae, save_sae
from sae_training import TensorActivationSource, TrainConfig, Trainer
from sae_training import calibrate as C
from sae_training.init import init_weights
from tests.sae_training.conftest import sparse_activations


def _random_sae(k: float = 3) -> SparseAutoencoder:
    sae = SparseAutoencoder(SAEConfig(d_in=12, d_sae=40, k=k))
    init_weights(sae, torch.Generator().manual_seed(0))
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.2, generator=torch.Generator().manual_seed(1))
    return sae


@pytest.mark.parametrize("batch", [7, 64, 300])  # small batches: the slice-wide merge works
def test_threshold_gives_batchtopk_over_the_slice(batch: int) -> None:
    sae = _random_sae()
    x = torch.randn(300, 12, generator=torch.Generator().manual_seed(2)) + 0.5
    calib = C.calibrate(sae, x, batch_size=batch)
    pre = sae.preacts(x).detach()  # (300, 40)
    top = pre.flatten().topk(3 * 300)
    expect = torch.zeros(pre.numel(), dtype=torch.bool)
    expect[top.indices] = True
    assert torch.equal((sae.encode(x) > 0).flatten(), expect)  # JumpReLU == BatchTopK(slice)
    assert calib.threshold < float(top.values.min()) <= calib.threshold * (1 + 1e-6)
    assert torch.equal(sae.threshold, torch.full((40,), calib.threshold))
    recon = sae.decode(sae.encode(x)).detach()
    ev = 1 - (x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert calib.jumprelu.explained_variance == pytest.approx(float(ev), abs=1e-5)
    assert calib.jumprelu.l0 == pytest.approx(3.0) and calib.batchtopk.l0 == pytest.approx(3.0)
    btk, jr = C.measure_forms(sae, x, batch)  # the same numbers through the training encode
    assert btk.explained_variance == pytest.approx(calib.batchtopk.explained_variance, abs=1e-5)
    assert jr.explained_variance == pytest.approx(calib.jumprelu.explained_variance, abs=1e-5)
    if batch == 300:  # one batch: BatchTopK over the slice is the JumpReLU form
        assert calib.jumprelu.explained_variance == pytest.approx(
            calib.batchtopk.explained_variance, abs=1e-6)
    else:
        assert calib.jumprelu.explained_variance != calib.batchtopk.explained_variance


def test_fewer_positive_preacts_than_k_keeps_every_positive_one() -> None:
    sae = _random_sae(k=30)
    with torch.no_grad():
        sae.b_enc.fill_(-3.0)  # few positive pre-activations
    x = torch.randn(50, 12, generator=torch.Generator().manual_seed(3))
    calib = C.calibrate(sae, x, batch_size=50)
    assert calib.threshold == 0.0
    assert torch.equal(sae.encode(x), sae.preacts(x).relu())


def test_saved_sae_matches_the_trained_form_after_40_steps(tmp_path: Path) -> None:
    data = sparse_activations(6144)
    train, unseen = data[:4096], data[4096:]  # ``unseen`` is never given to the trainer
    cfg = TrainConfig(d_sae=64, k=4, widths=[8, 32, 64], batch_size=128, total_tokens=128 * 40,
                      lr=3e-3, held_out_tokens=512, checkpoint_every=0, progress=False, seed=0)
    trainer = Trainer(cfg, TensorActivationSource(train), tmp_path / "sae")
    assert torch.equal(trainer.held_out, train[-512:])  # the trainer's own slice
    trainer.fit()
    saved = load_sae(tmp_path / "sae")
    rec = json.loads((tmp_path / "sae" / C.CALIBRATION_FILE).read_text())
    assert rec["held_out_tokens"] == 512 and rec["batch_size"] == 128 and rec["k"] == 4
    assert rec["threshold"] == pytest.approx(float(saved.threshold[0]))
    assert torch.all(saved.threshold == saved.threshold[0]) and rec["threshold"] > 0
    # targets, on the slice (recorded) and on rows neither training nor calibration saw
    btk, jr = C.measure_forms(saved, unseen, 128)
    for b, j in ((rec["batchtopk"], rec["jumprelu"]), (vars(btk), vars(jr))):
        assert abs(j["l0"] - 4) <= 0.15 * 4, (b, j)
        assert abs(j["explained_variance"] - b["explained_variance"]) <= 0.02, (b, j)
        assert b["explained_variance"] > 0.5


def test_calibrated_sae_keeps_both_loading_guarantees(tmp_path: Path) -> None:
    sae = _random_sae()
    x = torch.randn(200, 12, generator=torch.Generator().manual_seed(4))
    C.calibrate(sae, x, batch_size=100)
    save_sae(sae, tmp_path / "lens")
    save_sae(sae, tmp_path / "dl", layout="dictionary_learning")  # needs one threshold value
    for folder in ("lens", "dl"):
        assert torch.equal(load_sae(tmp_path / folder).encode(x), sae.encode(x))
    sae_lens = pytest.importorskip("sae_lens")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "lens"))
    with torch.no_grad():
        assert torch.allclose(theirs.encode(x), sae.encode(x), atol=1e-6)


def test_held_out_size_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--held-out-tokens N >= 1"):
        TrainConfig(d_sae=64, k=4, held_out_tokens=0)
    cfg = TrainConfig(d_sae=64, k=4, batch_size=64, held_out_tokens=4096, progress=False)
    with pytest.raises(ValueError, match="--held-out-tokens between 1 and 4095"):
        Trainer(cfg, TensorActivationSource(sparse_activations(4096)), tmp_path / "sae")
