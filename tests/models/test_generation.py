"""The one generation path: ids, text and the layout of every position; decoding settings;
per-step capture under the key/value cache equals one teacher-forced pass."""

from __future__ import annotations

import pytest
import torch

from radinterp.data import Study
from radinterp.generation import DecodeConfig, generate, pad_token_id
from radinterp.hooks import capture
from radinterp.models.tokens import TokenKind


@pytest.fixture
def two_studies(full_study):
    return [full_study, Study("s2", frontal=full_study.frontal, indication="Fever.")]


def test_layout_has_generated_for_exactly_the_new_tokens(tiny_adapter, two_studies, monkeypatch):
    decode = DecodeConfig(max_new_tokens=6, do_sample=True, seed=0)
    free = generate(tiny_adapter, two_studies, decode)
    assert [len(ids) for ids in free.new_ids] == [6, 6]  # random weights: no end-of-sequence
    # make a token only row 1 writes the stop token: row 1 ends there (then padding), row 0 runs on
    row0, row1 = (ids.tolist() for ids in free.new_ids)
    j, stop = next((j, t) for j, t in enumerate(row1[:-1]) if t not in row0)
    monkeypatch.setattr(tiny_adapter.model.generation_config, "eos_token_id", stop)
    out = generate(tiny_adapter, two_studies, decode)  # same seed: the same draws
    assert out.new_ids[0].tolist() == row0 and out.new_ids[1].tolist() == row1[: j + 1]
    for i, study in enumerate(two_studies):
        prompt = tiny_adapter.build_inputs(study)
        layout = out.layouts[i]
        n = len(prompt.input_ids)
        assert len(layout) == n + len(out.new_ids[i]) == len(out.sequence_ids(i))
        assert (layout.kind[n:] == TokenKind.GENERATED).all()
        assert (layout.kind[:n] == prompt.layout.kind).all() and (layout.kind[:n] != TokenKind.GENERATED).all()
        assert out.texts[i] == tiny_adapter.tokenizer.decode(out.new_ids[i], skip_special_tokens=True)
        assert out.study_ids[i] == study.study_id
    assert out.inputs()[1].input_ids.tolist() == out.sequence_ids(1).tolist()
    assert tiny_adapter.generate(two_studies, max_new_tokens=6, do_sample=True, seed=0) == [
        t.strip() for t in out.texts]


def test_sampling_is_seeded_and_grouped_by_study(tiny_adapter, two_studies):
    decode = DecodeConfig(max_new_tokens=4, do_sample=True, num_return_sequences=3, seed=5)
    a = generate(tiny_adapter, two_studies, decode, batch_size=1, samples_per_call=2)
    b = generate(tiny_adapter, two_studies, decode, batch_size=1, samples_per_call=2)
    assert [t.tolist() for t in a.new_ids] == [t.tolist() for t in b.new_ids]
    assert a.study_ids == ["s-full"] * 3 + ["s2"] * 3
    assert len({tuple(t.tolist()) for t in a.new_ids}) > 1  # samples, not one greedy sequence


def test_decode_settings_name_the_fix(tiny_adapter):
    with pytest.raises(ValueError, match="do_sample=True"):
        DecodeConfig(num_return_sequences=2)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        DecodeConfig(do_sample=True, temperature=0)
    with pytest.raises(ValueError, match="unknown fields"):
        tiny_adapter.generate([], max_new_tokens=3, beams=4)
    assert pad_token_id(tiny_adapter.tokenizer) == tiny_adapter.tokenizer.pad_token_id


@torch.no_grad()
def test_per_step_capture_equals_a_teacher_forced_pass(tiny_adapter, two_studies):
    sites = ["lm.blocks.1.resid_pre", "lm.blocks.3.resid_post"]
    with capture(tiny_adapter, sites, stop_early=False, accumulate=True) as steps:
        out = generate(tiny_adapter, two_studies, DecodeConfig(max_new_tokens=5))
    batch = tiny_adapter.collate(out.inputs(), padding_side="right")
    with capture(tiny_adapter, sites) as full:
        tiny_adapter.model(**tiny_adapter.to_device(batch))
    prompt = tiny_adapter.collate([tiny_adapter.build_inputs(s) for s in two_studies], padding_side="left")
    T0 = prompt.input_ids.shape[1]
    for site in sites:
        assert steps[site].shape == (2, T0 + 4, tiny_adapter.d_model)  # the last token is never read back
        for b, o in enumerate(prompt.offsets):
            n = prompt.lengths[b] + 4
            torch.testing.assert_close(steps[site][b, o:], full[site][b, :n], rtol=1e-4, atol=1e-4)


def test_head_drops_the_images_it_cuts_and_keeps_the_frontal_prefix_exact(tiny_adapter, full_study):
    """A prefix cut after the frontal image keeps only the images before the cut, and the frontal
    positions' hidden states equal those of the full prompt (a causal model)."""
    import numpy as np

    from radinterp.hooks import capture
    from radinterp.models.tokens import ImageSlot, TokenKind

    full = tiny_adapter.build_inputs(full_study, with_report=False)
    lay = full.layout
    frontal = np.flatnonzero((lay.kind == int(TokenKind.IMAGE)) & (lay.image_slot == int(ImageSlot.FRONTAL)))
    assert full.pixel_values.shape[0] == 3  # frontal, lateral, prior frontal
    cut = full.head(int(frontal[-1]) + 1)
    assert cut.pixel_values.shape[0] == 1 and cut.input_ids.shape[0] == frontal[-1] + 1
    site = "lm.blocks.0.resid_post"
    got = {}
    for name, inp in (("full", full), ("cut", cut)):
        batch = tiny_adapter.collate([inp], padding_side="right")
        with torch.no_grad(), capture(tiny_adapter, [site]) as acts:
            tiny_adapter.model(**tiny_adapter.to_device(batch))
        got[name] = acts[site][0, frontal]
    torch.testing.assert_close(got["cut"], got["full"])
    with pytest.raises(ValueError, match="splits the image"):
        full.head(int(frontal[3]))
