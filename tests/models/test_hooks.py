"""Hooks: captured residuals equal HF hidden states, early stop, cleanup after errors, edits."""

from __future__ import annotations

import pytest
import torch

from radinterp.data import Study
from radinterp.hooks import active_hook_count, capture, edit


@pytest.fixture
def batch_kwargs(tiny_adapter, full_study):
    short = Study("s2", frontal=full_study.frontal, indication="Fever.")
    items = [tiny_adapter.build_inputs(full_study, with_report=True), tiny_adapter.build_inputs(short)]
    return tiny_adapter.to_device(tiny_adapter.collate(items))


@torch.no_grad()
def test_resid_post_equals_hidden_states(tiny_adapter, batch_kwargs):
    ref = tiny_adapter.model(**batch_kwargs, output_hidden_states=True).hidden_states
    n = tiny_adapter.n_layers
    sites = [f"lm.blocks.{i}.resid_post" for i in range(n)]
    with capture(tiny_adapter, sites + ["lm.blocks.1.resid_pre"], stop_early=False) as acts:
        tiny_adapter.model(**batch_kwargs)
    for i in range(n - 1):  # HF's last hidden state is taken after the final norm
        torch.testing.assert_close(acts[f"lm.blocks.{i}.resid_post"], ref[i + 1], rtol=0, atol=0)
    torch.testing.assert_close(acts["lm.blocks.1.resid_pre"], ref[1], rtol=0, atol=0)
    norm = tiny_adapter.model.model.language_model.norm
    torch.testing.assert_close(norm(acts[f"lm.blocks.{n - 1}.resid_post"]), ref[n])


@torch.no_grad()
def test_vision_and_projector_sites(tiny_adapter, batch_kwargs):
    with capture(tiny_adapter, ["vision.blocks.1", "projector"]) as acts:
        tiny_adapter.model(**batch_kwargs)
    n_img = batch_kwargs["pixel_values"].shape[0]
    assert acts["vision.blocks.1"].shape == (n_img, 1 + tiny_adapter.n_image_tokens, 32)
    assert acts["projector"].shape == (n_img, tiny_adapter.n_image_tokens, tiny_adapter.d_model)


@torch.no_grad()
def test_early_stop_skips_deeper_layers(tiny_adapter, batch_kwargs):
    ran = []
    layers = tiny_adapter.lm_layers()
    handles = [l.register_forward_hook(lambda m, a, o, i=i: ran.append(i)) for i, l in enumerate(layers)]
    try:
        with capture(tiny_adapter, ["lm.blocks.1.resid_post"]) as acts:
            tiny_adapter.model(**batch_kwargs)
    finally:
        for h in handles:
            h.remove()
    assert ran == [0, 1]
    assert acts["lm.blocks.1.resid_post"].shape[-1] == tiny_adapter.d_model


def test_hooks_removed_after_exception(tiny_adapter, batch_kwargs):
    before = active_hook_count(tiny_adapter.model)
    with pytest.raises(RuntimeError, match="boom"):
        with capture(tiny_adapter, ["lm.blocks.2.resid_post", "projector"], stop_early=False):
            assert active_hook_count(tiny_adapter.model) == before + 2
            raise RuntimeError("boom")
    assert active_hook_count(tiny_adapter.model) == before
    with pytest.raises(RuntimeError, match="size of tensor"):
        with edit(tiny_adapter, {"lm.blocks.0.resid_post": lambda h, ctx: h[..., :3]}):
            tiny_adapter.model(**batch_kwargs)  # the bad edit breaks the forward inside HF
    assert active_hook_count(tiny_adapter.model) == before


@torch.no_grad()
def test_edit_changes_downstream_activations(tiny_adapter, batch_kwargs):
    with capture(tiny_adapter, ["lm.blocks.3.resid_post"]) as clean:
        tiny_adapter.model(**batch_kwargs)
    direction = torch.randn(tiny_adapter.d_model)
    with edit(tiny_adapter, {"lm.blocks.1.resid_post": lambda h, ctx: h + 5 * direction}):
        with capture(tiny_adapter, ["lm.blocks.1.resid_post", "lm.blocks.3.resid_post"]) as steered:
            tiny_adapter.model(**batch_kwargs)
    assert (steered["lm.blocks.3.resid_post"] - clean["lm.blocks.3.resid_post"]).abs().max() > 1e-2


def test_unknown_sites_name_the_valid_forms(tiny_adapter):
    with pytest.raises(ValueError, match=r"lm\.blocks\.\{i\}\.resid_post"):
        with capture(tiny_adapter, ["lm.layer.3"]):
            pass
    with pytest.raises(ValueError, match=r"0\.\.3"):
        with capture(tiny_adapter, ["lm.blocks.40.resid_post"]):
            pass
