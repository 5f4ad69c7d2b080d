"""Adapter loading: registry, MAIRA-2 folders, remote-code opt-in, generic LLaVA checkpoints."""

from __future__ import annotations

import json

import pytest
import torch

from radinterp.data import Study
from radinterp.hooks import capture
from radinterp.models import ADAPTERS, load_adapter


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
