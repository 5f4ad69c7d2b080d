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


# ------------------------------------------------------------ edits that know where they are
SITE = "lm.blocks.1.resid_post"


@pytest.fixture
def two_studies(full_study):
    """Two studies of different lengths: left padding puts row 1 at a non-zero offset."""
    return [full_study, Study("s2", frontal=full_study.frontal, indication="Fever.")]


def _record(log: list):
    def fn(h, ctx):
        log.append((ctx.step, ctx.columns.clone(), ctx.positions().clone(), ctx.kinds().clone()))
        return None

    return fn


@torch.no_grad()
def test_positions_and_kinds_are_per_row_under_left_padding(tiny_adapter, two_studies):
    from radinterp.generation import DecodeConfig, generate
    from radinterp.models.tokens import TokenKind

    seen: list = []
    vision: list = []
    edits = {SITE: _record(seen), "projector": lambda h, ctx: vision.append(ctx)}
    generate(tiny_adapter, two_studies, DecodeConfig(max_new_tokens=3), edits=edits)
    batch = tiny_adapter.collate([tiny_adapter.build_inputs(s) for s in two_studies], padding_side="left")
    T0 = batch.input_ids.shape[1]
    assert batch.offsets[0] != batch.offsets[1]
    assert [s[0] for s in seen] == [None, 0, 1]  # prompt pass, then one step per token read back
    step, cols, pos, kinds = seen[0]
    assert torch.equal(cols, torch.arange(T0))
    for b, (o, n, layout) in enumerate(zip(batch.offsets, batch.lengths, batch.layouts)):
        assert (pos[b, :o] == -1).all() and (kinds[b, :o] == -1).all()
        assert torch.equal(pos[b, o:], torch.arange(n))
        assert torch.equal(kinds[b, o:], torch.from_numpy(layout.kind.astype("int64")))
    for n, (step, cols, pos, kinds) in enumerate(seen[1:]):
        assert torch.equal(cols, torch.tensor([T0 + n]))
        assert pos[:, 0].tolist() == [length + n for length in batch.lengths]
        assert (kinds == TokenKind.GENERATED).all()
    ctx = vision[0]  # images, not positions: no columns, and selecting by position is refused
    assert ctx.columns is None and ctx.is_prompt_pass
    with pytest.raises(ValueError, match="language-model site"):
        ctx.select("image")


def _add_at_image_columns(module, batch, delta):
    """A plain torch hook adding ``delta`` at each row's image columns, computed by hand from the
    layouts and offsets, on the prompt pass only (under the cache, later forwards hold one
    generated token each)."""
    mask = torch.zeros(batch.input_ids.shape, dtype=torch.bool)  # (B, T0)
    for b, (o, layout) in enumerate(zip(batch.offsets, batch.layouts)):
        mask[b, o + torch.from_numpy((layout.kind == 0).nonzero()[0])] = True

    def hook(mod, args, out):
        h = out[0] if isinstance(out, tuple) else out  # (B, T, d)
        if h.shape[1] == 1:
            return None
        h = torch.where(mask[..., None], h + delta, h)
        return (h, *out[1:]) if isinstance(out, tuple) else h

    return module.register_forward_hook(hook)


@torch.no_grad()
def test_image_only_edit_under_generate_matches_a_manual_hook(tiny_adapter, two_studies):
    from radinterp.edits import only
    from radinterp.generation import DecodeConfig, generate

    torch.manual_seed(1)
    delta = 3.0 * torch.randn(tiny_adapter.d_model)
    decode = DecodeConfig(max_new_tokens=4)
    watch = ["lm.blocks.2.resid_pre", "lm.blocks.3.resid_post"]  # right after the edit; downstream
    with capture(tiny_adapter, watch, stop_early=False, accumulate=True) as clean:
        generate(tiny_adapter, two_studies, decode)
    with capture(tiny_adapter, watch, stop_early=False, accumulate=True) as edited:
        out = generate(tiny_adapter, two_studies, decode, edits={SITE: only("image", lambda h, ctx: h + delta)})
    batch = tiny_adapter.collate([tiny_adapter.build_inputs(s) for s in two_studies], padding_side="left")
    handle = _add_at_image_columns(tiny_adapter.resolve(SITE)[0], batch, delta)
    try:
        with capture(tiny_adapter, watch, stop_early=False, accumulate=True) as manual:
            ids = tiny_adapter.model.generate(**tiny_adapter.to_device(batch), max_new_tokens=4,
                                              do_sample=False, pad_token_id=tiny_adapter.tokenizer.pad_token_id)
    finally:
        handle.remove()
    for site in watch:  # the EditContext edit is the hand-placed one, bit for bit
        assert torch.equal(edited[site], manual[site])
    assert [out.sequence_ids(i).tolist() for i in range(2)] == [
        ids[b, o:].tolist() for b, o in enumerate(batch.offsets)]
    # right after the edit only image positions moved, each by exactly delta
    T0 = batch.input_ids.shape[1]
    diff = edited["lm.blocks.2.resid_pre"][:, :T0] - clean["lm.blocks.2.resid_pre"][:, :T0]  # (B, T0, d)
    moved = diff.abs().amax(-1) > 0  # (B, T0)
    for b, (o, layout) in enumerate(zip(batch.offsets, batch.layouts)):
        expect = torch.zeros(T0, dtype=torch.bool)
        expect[o:] = torch.from_numpy(layout.kind == 0)
        assert torch.equal(moved[b], expect)
        torch.testing.assert_close(diff[b, expect], delta.expand(int(expect.sum()), -1))
    assert (edited["lm.blocks.3.resid_post"] - clean["lm.blocks.3.resid_post"]).abs().max() > 1e-2


@torch.no_grad()
def test_generated_only_edit_leaves_the_prompt_pass_untouched(tiny_adapter, two_studies):
    from radinterp.edits import only
    from radinterp.generation import DecodeConfig, generate

    torch.manual_seed(2)
    delta = 5.0 * torch.randn(tiny_adapter.d_model)
    decode = DecodeConfig(max_new_tokens=4)
    steps: list = []

    def push(h, ctx):
        steps.append(ctx.step)
        return h + delta

    with capture(tiny_adapter, ["lm.blocks.3.resid_post"], stop_early=False, accumulate=True) as clean:
        generate(tiny_adapter, two_studies, decode)
    with capture(tiny_adapter, ["lm.blocks.3.resid_post"], stop_early=False, accumulate=True) as edited:
        generate(tiny_adapter, two_studies, decode, edits={SITE: only("generated", push)})
    T0 = tiny_adapter.collate([tiny_adapter.build_inputs(s) for s in two_studies]).input_ids.shape[1]
    a, b = clean["lm.blocks.3.resid_post"], edited["lm.blocks.3.resid_post"]  # (B, T0 + 3, d)
    assert a.shape == b.shape == (2, T0 + 3, tiny_adapter.d_model)
    assert torch.equal(a[:, :T0], b[:, :T0])  # the prompt pass, bit for bit
    assert (a[:, T0:] - b[:, T0:]).abs().amax(-1).min() > 1e-2  # every generated token moved
    assert steps == [0, 1, 2]  # fn ran on generated steps only


def test_hooks_are_gone_when_generation_raises(tiny_adapter, two_studies):
    from radinterp.generation import DecodeConfig, generate

    def boom(h, ctx):
        if ctx.step == 1:
            raise RuntimeError("boom at step 1")
        return None

    before = active_hook_count(tiny_adapter.model)
    with pytest.raises(RuntimeError, match="boom at step 1"):
        with capture(tiny_adapter, ["lm.blocks.2.resid_post"], stop_early=False, accumulate=True):
            generate(tiny_adapter, two_studies, DecodeConfig(max_new_tokens=4), edits={SITE: boom})
    assert active_hook_count(tiny_adapter.model) == before
    with pytest.raises(ValueError, match="stop_early=False"):
        with capture(tiny_adapter, [SITE], accumulate=True):
            pass
    assert active_hook_count(tiny_adapter.model) == before


@torch.no_grad()
def test_selection_by_kind_needs_the_batch_and_names_the_fix(tiny_adapter, batch_kwargs):
    from radinterp.edits import SELECTORS, only

    assert {"all", "image", "prompt", "report", "generated"} <= set(SELECTORS.names())
    with pytest.raises(ValueError, match="pass batch="):
        with edit(tiny_adapter, {SITE: only("image", lambda h, ctx: h + 1)}):
            tiny_adapter.model(**batch_kwargs)
    with pytest.raises(KeyError, match="valid names: all"):
        with edit(tiny_adapter, {SITE: only("imgae", lambda h, ctx: h + 1)}):
            tiny_adapter.model(**batch_kwargs)


@torch.no_grad()
def test_explicit_positions_on_a_teacher_forced_forward(tiny_adapter, full_study):
    """Explicit per-row positions land on the right columns, also at a non-zero offset."""
    from radinterp.edits import only

    short = Study("s2", frontal=full_study.frontal, indication="Fever.")
    items = [tiny_adapter.build_inputs(full_study, with_report=True), tiny_adapter.build_inputs(short)]
    batch = tiny_adapter.collate(items, padding_side="left")
    kw = tiny_adapter.to_device(batch)
    with capture(tiny_adapter, ["lm.blocks.2.resid_pre"], stop_early=False) as clean:
        tiny_adapter.model(**kw)
    wanted = [[0, 5], [3]]
    with edit(tiny_adapter, {SITE: only(wanted, lambda h, ctx: h + 1.0)}, batch=batch):
        with capture(tiny_adapter, ["lm.blocks.2.resid_pre"], stop_early=False) as edited:
            tiny_adapter.model(**kw)
    moved = (edited["lm.blocks.2.resid_pre"] != clean["lm.blocks.2.resid_pre"]).any(-1)  # (B, T)
    for b, cols in enumerate(wanted):
        assert moved[b].nonzero()[:, 0].tolist() == [batch.offsets[b] + p for p in cols]
