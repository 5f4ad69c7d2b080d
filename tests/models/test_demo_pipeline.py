"""The demo model's training script end to end at toy size: every stage runs on real phantoms
and the real SmolLM2, the stages chain, and a rerun resumes instead of retraining."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from radinterp.demo_model.align import AlignConfig
from radinterp.demo_model.build import ADDED_ROWS_KEY, WEIGHTS_FILE
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.export import export
from radinterp.demo_model.train import default_balanced, default_polish, run
from radinterp.demo_model.train_lm import LMTrainConfig
from radinterp.demo_model.train_vision import VisionTrainConfig

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_training_script_runs_every_stage_and_resumes(tmp_path):
    cfg = DemoModelConfig(image_size=112, vision_hidden=48, vision_layers=1, vision_heads=2,
                          projector_layers=2, lora_targets=("q_proj", "v_proj"))
    lm = LMTrainConfig(steps=2, batch_size=2, warmup_steps=1, aux_batch=4, ckpt_every=1)
    balanced = LMTrainConfig(steps=2, batch_size=2, warmup_steps=1, aux_batch=4, ckpt_every=1,
                             balance=1.0, positive_weight=5.0)
    kw = dict(n_train=6, n_vision=8, n_val=6, vision=VisionTrainConfig(epochs=1, batch_size=4,
              warmup_steps=1), lm=lm, balanced=balanced, align=AlignConfig(steps=2, batch_size=8),
              realign=AlignConfig(steps=2, batch_size=8, pool="image"),
              polish=default_polish(balanced, 2), model_cfg=cfg, progress=False)
    wdir = run(tmp_path, **kw)

    meta = json.loads((wdir / "meta.json").read_text())
    assert meta["balanced_config"]["balance"] == 1.0
    assert meta["realign_config"]["pool"] == "image" and meta["realign_final_mse"] is not None
    assert len(meta["stage2_losses"]) == 2 and len(meta["stage3_losses"]) == 2
    assert len(meta["stage4_losses"]) == 2 and meta["polish_config"]["seed"] == balanced.seed + 1
    s2, s3, s4 = (load_file(str(tmp_path / d / "ckpt" / "params.safetensors")) for d in ("lm", "lm3", "lm4"))
    key = next(k for k in s2 if k.endswith("lora_B"))
    assert not torch.equal(s2[key], s3[key])  # stage 3 kept training from stage 2's weights
    assert not torch.equal(s3[key], s4[key])  # and stage 4 from stage 3's
    shipped = load_file(str(wdir / WEIGHTS_FILE))
    exported = load_file(str(export(tmp_path, tmp_path / "exported") / WEIGHTS_FILE))
    assert exported.keys() == shipped.keys()  # export picks stage 4's checkpoint, tower included
    # every trained tensor is the same; the untrained added-token rows are a mean embedding
    # taken in the LM's build dtype (bf16 in training, float32 in export), so only close
    assert all(torch.equal(exported[k], shipped[k]) for k in shipped if k != ADDED_ROWS_KEY)
    torch.testing.assert_close(exported[ADDED_ROWS_KEY], shipped[ADDED_ROWS_KEY], atol=1e-2, rtol=0)

    before = {d: (tmp_path / d / "ckpt" / "state.json").read_text() for d in ("lm", "lm3", "lm4")}
    run(tmp_path, **kw)  # resumes: every LM stage is complete, nothing retrains
    assert {d: (tmp_path / d / "ckpt" / "state.json").read_text() for d in before} == before

    with pytest.raises(ValueError, match="another model config"):
        run(tmp_path, **{**kw, "model_cfg": DemoModelConfig(image_size=112)})


def test_default_stage3_halves_the_learning_rates_and_balances():
    lm = LMTrainConfig()
    b = default_balanced(lm, 700)
    assert (b.steps, b.balance, b.lr_lora, b.lr_projector) == (700, 0.5, lm.lr_lora / 2, lm.lr_projector / 2)
    assert b.positive_weight > lm.positive_weight


def test_stage4_repeats_stage3_with_the_next_seed_and_needs_it(tmp_path):
    b = default_balanced(LMTrainConfig(), 1000)
    p = default_polish(b, 500)
    assert (p.steps, p.seed, p.lr_lora, p.balance) == (500, b.seed + 1, b.lr_lora, b.balance)
    with pytest.raises(ValueError, match="stage 4 continues stage 3"):
        run(tmp_path, balanced_steps=0, polish=p)
    assert not tmp_path.joinpath("cfg.json").exists()  # refused before any work


def test_export_says_when_a_run_has_no_language_model_checkpoint_yet(tmp_path):
    (tmp_path / "lm" / "ckpt").mkdir(parents=True)  # stage 2 started, nothing saved yet
    with pytest.raises(FileNotFoundError, match="no language-model checkpoint yet"):
        export(tmp_path, tmp_path / "w")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_a_device_this_machine_lacks_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="no CUDA GPU here; use --device cpu"):
        run(tmp_path, device="cuda")
    with pytest.raises(ValueError, match="not a torch device"):
        run(tmp_path, device="gpu0")
    assert not any(tmp_path.iterdir())  # nothing generated, nothing trained
