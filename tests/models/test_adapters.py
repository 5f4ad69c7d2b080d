"""Adapter loading: registry, MAIRA-2 folders, remote-code opt-in, generic LLaVA checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from radinterp.data import Study
from radinterp.hooks import capture
from radinterp.models import ADAPTERS, load_adapter, load_options


def test_registry_lists_the_adapters():
    assert {"tiny", "maira2", "llava"} <= set(ADAPTERS.names())
    with pytest.raises(KeyError, match="valid adapter names"):
        load_adapter("gpt-17")


def test_maira2_adapter_loads_a_saved_folder_of_the_same_architecture(tmp_path, tiny_adapter, full_study):
    tiny_adapter.model.save_pretrained(tmp_path)
    tiny_adapter.tokenizer.save_pretrained(tmp_path)
    loaded = load_adapter(str(tmp_path), image_size=112)
    assert loaded.name == "maira2"
    batch = tiny_adapter.collate([tiny_adapter.build_inputs(full_study)])
    with torch.no_grad():
        a = tiny_adapter.model(**tiny_adapter.to_device(batch)).logits
        b = loaded.model(**loaded.to_device(batch)).logits
    torch.testing.assert_close(a, b)
    assert len(loaded.model.model.multi_modal_projector.layers) == 7  # 4 linear + 3 GELU


def test_remote_code_needs_explicit_opt_in(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "maira2", "auto_map": {"AutoModelForCausalLM": "modeling_maira2.X"}})
    )
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        load_adapter(str(tmp_path))


def test_quantisation_on_cpu_names_the_requirement():
    if torch.cuda.is_available():
        pytest.skip("CPU-only behaviour")
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        ADAPTERS.get("maira2").load("microsoft/maira-2", trust_remote_code=True, quantization="8bit")
    with pytest.raises(ValueError, match="quantization must be one of"):
        ADAPTERS.get("maira2").load("microsoft/maira-2", quantization="3bit")


def test_unknown_folder_types_are_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="not a LLaVA-style model"):
        load_adapter(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        load_adapter(str(empty))


def test_generic_llava_checkpoint(tmp_path, tiny_adapter, radiograph):
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tok = tiny_adapter.tokenizer
    cfg = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=56, patch_size=14),
        text_config=LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=4, vocab_size=len(tok)),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=16,
    )
    torch.manual_seed(0)
    LlavaForConditionalGeneration(cfg).save_pretrained(tmp_path)
    improc = CLIPImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56})
    LlavaProcessor(image_processor=improc, tokenizer=tok, patch_size=14, num_additional_image_tokens=1,
                   vision_feature_select_strategy="default").save_pretrained(tmp_path)
    adapter = load_adapter(str(tmp_path))
    assert adapter.name == "llava" and adapter.n_image_tokens == 16
    inputs = adapter.build_inputs(Study("l", frontal=radiograph(), indication="Cough."))
    assert inputs.pixel_values.shape == (1, 3, 56, 56)
    with capture(adapter, ["lm.blocks.1.resid_post", "vision.blocks.0"]) as acts:
        adapter.model(**adapter.to_device(adapter.collate([inputs])))
    assert acts["lm.blocks.1.resid_post"].shape == (1, len(inputs.input_ids), 64)
    assert acts["vision.blocks.0"].shape == (1, 17, 32)
    # a 16-bit DICOM of the radiograph reaches the checkpoint's processor as its 8-bit min-max
    from radinterp.models.image import to_greyscale_uint8
    from tests.models.test_dicom import write_dicom

    grey = np.asarray(radiograph(), dtype=np.int64)
    dcm = write_dicom(tmp_path / "r.dcm", grey * 257)
    from_dicom = adapter.build_inputs(Study("d", frontal=str(dcm), indication="Cough."))
    eight_bit = adapter.build_inputs(Study("e", frontal=to_greyscale_uint8(radiograph()), indication="Cough."))
    assert not torch.equal(eight_bit.pixel_values, inputs.pixel_values)  # the min-max did something
    torch.testing.assert_close(from_dicom.pixel_values, eight_bit.pixel_values, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["tiny", "demo", "maira2", "llava"])
def test_every_adapter_refuses_options_it_does_not_take_before_loading(name, tmp_path):
    valid = load_options(ADAPTERS.get(name))
    assert {"device", "dtype"} <= set(valid) and "path" not in valid
    # maira2 / llava would fetch or read a checkpoint: the refusal must come first
    with pytest.raises(ValueError, match=rf"the {name} adapter takes no colour_depth; "
                                         rf"valid options: {', '.join(valid)} \(fix: drop colour_depth\)"):
        load_adapter(name, colour_depth=8, **({"trust_remote_code": True} if name == "maira2" else {}))
    with pytest.raises(TypeError, match="colour_depth"):  # the class itself takes no **kwargs either
        ADAPTERS.get(name).load(None, colour_depth=8)


def test_demo_refuses_an_image_size_and_says_why():
    with pytest.raises(ValueError, match=r"the demo adapter takes no image_size \(its vision tower is "
                                         r"trained at one size.*224 px.*\); valid options: allow_untrained, "
                                         r"device, dtype, seed, weights_dir"):
        load_adapter("demo", image_size=518)


def test_a_checkpoint_folder_is_checked_before_its_weights_are_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))  # no weights at all
    with pytest.raises(ValueError, match=r"the llava adapter takes no image_size \(the checkpoint's own "
                                         r"image processor sets the size\); valid options: device, dtype"):
        load_adapter(str(tmp_path), image_size=336)


def test_valid_options_still_load(tmp_path):
    tiny = load_adapter("tiny", image_size=56, seed=1, text_layers=2, device="cpu", dtype=torch.float64)
    assert tiny.image_cfg.size == 56 and tiny.n_image_tokens == 16
    assert len(tiny.model.model.language_model.layers) == 2
    assert next(tiny.model.parameters()).dtype == torch.float64
    demo = load_adapter("demo", weights_dir=tmp_path, seed=2, allow_untrained=True, device="cpu",
                        dtype=torch.bfloat16)  # tmp_path has no weights: seeded fresh init
    assert demo.weights_dir == tmp_path and not demo.trained
    assert next(demo.model.parameters()).dtype == torch.bfloat16


def test_capture_passes_each_adapter_only_options_it_takes(tmp_path):
    from radinterp.capture import CaptureConfig
    from radinterp.capture.runner import load_capture_adapter

    def cfg(model, **kw):
        return CaptureConfig(model=model, data=str(tmp_path), out=str(tmp_path / "acts"),
                             sites=["lm.blocks.0.resid_post"], progress=False, **kw)

    a = load_capture_adapter(cfg("tiny", image_size=56, seed=3), torch.device("cpu"))
    b = load_capture_adapter(cfg("tiny", image_size=56, seed=3), torch.device("cpu"))
    assert a.image_cfg.size == 56
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)  # the seed reached the random-weight adapter
    with pytest.raises(ValueError, match="the demo adapter takes no image_size"):
        load_capture_adapter(cfg("demo", image_size=112), torch.device("cpu"))
    with pytest.raises(ValueError, match="the tiny adapter takes no trust_remote_code"):
        load_capture_adapter(cfg("tiny", trust_remote_code=True), torch.device("cpu"))
