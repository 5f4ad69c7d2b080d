"""SAE folders: sae-lens layout (checked with the real sae-lens) and dictionary_learning layout
(checked on a checkpoint written by the dictionary-learning package when it is installed)."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from radinterp.sae import SAEConfig, SparseAutoencoder, detect_layout, load_sae, save_sae


def _trained_like_sae(seed: int = 0) -> SparseAutoencoder:
    torch.manual_seed(seed)
    sae = SparseAutoencoder(SAEConfig(d_in=16, d_sae=64, k=4, widths=[8, 32, 64],
                                      site="lm.blocks.15.resid_post", model="tiny"))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.25)
        sae.W_dec.normal_(0, 0.25)
        sae.b_enc.normal_(0, 0.3)
        sae.b_dec.normal_()
        sae.threshold.fill_(0.4)
    return sae


def test_sae_lens_layout_roundtrip(tmp_path: Path) -> None:
    sae = _trained_like_sae()
    save_sae(sae, tmp_path / "sae")
    assert detect_layout(tmp_path / "sae") == "sae_lens"
    back = load_sae(tmp_path / "sae")
    assert back.cfg.widths == [8, 32, 64] and back.cfg.k == 4
    assert back.cfg.site == "lm.blocks.15.resid_post"
    x = torch.randn(50, 16)
    assert torch.equal(back.encode(x), sae.encode(x))
    assert torch.equal(back.decode(sae.encode(x)), sae.decode(sae.encode(x)))


def test_real_sae_lens_loads_our_folder_and_matches(tmp_path: Path) -> None:
    sae_lens = pytest.importorskip("sae_lens")
    sae = _trained_like_sae()
    save_sae(sae, tmp_path / "sae")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "sae"))
    assert theirs.cfg.architecture() == "jumprelu"
    assert theirs.cfg.metadata.training_architecture == "matryoshka_batchtopk"
    x = torch.randn(200, 16) * 2
    with torch.no_grad():
        z_theirs, z_ours = theirs.encode(x), sae.encode(x)
        assert (z_ours > 0).any() and (z_ours == 0).any()
        assert torch.allclose(z_theirs, z_ours, atol=1e-6)
        assert torch.allclose(theirs.decode(z_theirs), sae.decode(z_ours), atol=1e-5)


def test_dictionary_learning_layout_roundtrip(tmp_path: Path) -> None:
    sae = _trained_like_sae()
    save_sae(sae, tmp_path / "dl", layout="dictionary_learning")
    assert detect_layout(tmp_path / "dl") == "dictionary_learning"
    cfg = json.loads((tmp_path / "dl" / "config.json").read_text())
    assert cfg["trainer"]["dict_class"] == "MatryoshkaBatchTopKSAE"
    back = load_sae(tmp_path / "dl")
    assert back.cfg.widths == [8, 32, 64]
    x = torch.randn(50, 16)
    assert torch.equal(back.encode(x), sae.encode(x))


def _import_dictionary_learning_trainer(monkeypatch: pytest.MonkeyPatch):
    """The real MatryoshkaBatchTopK trainer of the dictionary-learning PyPI package.

    Its top-level ``__init__`` imports nnsight (an LLM-tracing dependency the trainer does
    not use), so the package module is created without running it; every submodule we use is
    the package's own code.
    """
    spec = importlib.util.find_spec("dictionary_learning")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("dictionary-learning is not installed (pip install --no-deps dictionary-learning==0.1.0)")
    pkg = types.ModuleType("dictionary_learning")
    pkg.__path__ = list(spec.submodule_search_locations)
    for name in [m for m in sys.modules if m.startswith("dictionary_learning")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dictionary_learning", pkg)
    from dictionary_learning.trainers.matryoshka_batch_top_k import MatryoshkaBatchTopKTrainer

    return MatryoshkaBatchTopKTrainer


def test_loads_checkpoint_written_by_dictionary_learning(tmp_path: Path, monkeypatch) -> None:
    Trainer = _import_dictionary_learning_trainer(monkeypatch)
    torch.manual_seed(0)
    trainer = Trainer(steps=30, activation_dim=16, dict_size=64, k=4, layer=15, lm_name="tiny",
                      group_fractions=[0.125, 0.375, 0.5], lr=1e-3, warmup_steps=2,
                      threshold_start_step=5, device="cpu", seed=0)
    data = torch.randn(30, 32, 16) + 1.0
    for step, x in enumerate(data):
        trainer.update(step, x)
    assert float(trainer.ae.threshold) > 0  # the inference threshold was estimated
    # what dictionary_learning.training.trainSAE writes at the end of a run
    out = tmp_path / "trainer_0"
    out.mkdir()
    with open(out / "config.json", "w") as f:
        json.dump({"trainer": trainer.config}, f, indent=4)
    torch.save({k: v.cpu() for k, v in trainer.ae.state_dict().items()}, out / "ae.pt")

    sae = load_sae(out)
    assert sae.cfg.widths == [8, 32, 64] and sae.cfg.k == 4 and sae.cfg.model == "tiny"
    x = torch.randn(100, 16) + 1.0
    with torch.no_grad():
        z_theirs = trainer.ae.encode(x)  # thresholded (inference) encode
        assert (z_theirs > 0).any()
        assert torch.allclose(sae.encode(x), z_theirs, atol=1e-6)
        assert torch.allclose(sae.decode(z_theirs), trainer.ae.decode(z_theirs), atol=1e-5)


def test_sae_lens_folder_of_another_architecture_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "gated"
    save_sae(_trained_like_sae(), folder)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["architecture"] = "gated"
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="'gated'.*loads only jumprelu"):
        load_sae(folder)


def test_dictionary_learning_folder_of_another_class_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "std"
    folder.mkdir()
    torch.save({"encoder.weight": torch.zeros(4, 2)}, folder / "ae.pt")
    (folder / "config.json").write_text(json.dumps({"trainer": {"dict_class": "AutoEncoder"}}))
    with pytest.raises(ValueError, match="'AutoEncoder'.*BatchTopKSAE"):
        load_sae(folder)


class _NotATensor:
    pass


def test_pickled_objects_in_ae_pt_are_not_unpickled(tmp_path: Path) -> None:
    folder = tmp_path / "evil"
    save_sae(_trained_like_sae(), folder, layout="dictionary_learning")
    state = torch.load(folder / "ae.pt", weights_only=True)
    state["payload"] = _NotATensor()
    torch.save(state, folder / "ae.pt")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_sae(folder)


def test_unknown_folder_names_the_expected_files(tmp_path: Path) -> None:
    save_file({"x": torch.zeros(1)}, str(tmp_path / "weights.safetensors"))
    with pytest.raises(ValueError, match="cfg.json \\+ sae_weights.safetensors"):
        load_sae(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_sae(tmp_path / "missing")
