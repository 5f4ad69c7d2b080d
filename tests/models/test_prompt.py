"""MAIRA-2 prompt: exact template, token kinds, image token counts, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radinterp.data import Study
from radinterp.models import ImageSlot, PromptField, TokenKind, load_adapter

# Written out by hand from MAIRA-2's processor (processing_maira2.py) and its vicuna-style chat
# format; every study input present.
EXPECTED = (
    "{bos}You are an expert radiology assistant tasked with interpreting a chest X-ray study. "
    "USER: Given the current frontal image<image> the current lateral image<image> and the "
    "prior frontal image<image> PRIOR_REPORT: Small left pleural effusion. Provide a structured "
    "description of the findings in the radiology study in comparison to the prior frontal "
    "image. INDICATION: Shortness of breath. TECHNIQUE: PA and lateral views of the chest. "
    "COMPARISON: Radiograph from two days prior. ASSISTANT:"
)


def test_full_study_prompt_matches_template_token_for_token(tiny_adapter, full_study):
    tok = tiny_adapter.tokenizer
    enc = tiny_adapter.encode_prompt(full_study)
    text = EXPECTED.format(bos=tok.bos_token)
    assert enc.text == text
    ids = tok(text, add_special_tokens=False)["input_ids"]
    image_id = tok.convert_tokens_to_ids("<image>")
    expanded = []
    for t in ids:
        expanded += [t] * tiny_adapter.n_image_tokens if t == image_id else [t]
    assert enc.input_ids == expanded
    # each token's character span in the text: the span of its own (expanded) whole-string token
    spans = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    expanded_spans = []
    for t, span in zip(ids, spans):
        expanded_spans += [span] * (tiny_adapter.n_image_tokens if t == image_id else 1)
    assert enc.char_spans.tolist() == [list(sp) for sp in expanded_spans]


def test_token_kinds_decode_to_the_study_fields(tiny_adapter, full_study):
    enc = tiny_adapter.encode_prompt(full_study, with_report=True)
    ids, lay, tok = np.array(enc.input_ids), enc.layout, tiny_adapter.tokenizer

    def text_of(mask):
        return tok.decode(ids[mask]).strip()

    content = lay.kind == TokenKind.PROMPT_CONTENT
    assert text_of(content & (lay.field == PromptField.INDICATION)) == full_study.indication
    assert text_of(content & (lay.field == PromptField.TECHNIQUE)) == full_study.technique
    assert text_of(content & (lay.field == PromptField.COMPARISON)) == full_study.comparison
    assert text_of(content & (lay.field == PromptField.PRIOR_REPORT)) == full_study.prior_report
    assert text_of(lay.kind == TokenKind.REPORT) == full_study.report
    assert enc.n_prompt == int(np.flatnonzero(lay.kind == TokenKind.REPORT)[0])
    # counts add up to the sequence length
    assert sum(lay.counts().values()) == len(ids) == len(lay)
    for slot in (ImageSlot.FRONTAL, ImageSlot.LATERAL, ImageSlot.PRIOR):
        sel = lay.image_slot == slot
        assert sel.sum() == tiny_adapter.n_image_tokens
        assert set(lay.patch_row[sel]) == set(range(tiny_adapter.n_patches_side))


def test_missing_sections_become_na_and_prompt_variants(tiny_adapter, radiograph):
    enc = tiny_adapter.encode_prompt(Study("a", frontal=radiograph()))
    assert "Given the current frontal image only<image>" in enc.text
    assert "INDICATION: N/A TECHNIQUE: N/A COMPARISON: N/A ASSISTANT:" in enc.text
    assert (enc.layout.kind == TokenKind.PROMPT_CONTENT).sum() == 0
    lat = tiny_adapter.encode_prompt(Study("b", frontal=radiograph(), lateral=radiograph()))
    assert "frontal image<image> and the current lateral image<image>" in lat.text
    grounded = tiny_adapter.encode_prompt(Study("c", frontal=radiograph()), grounded=True)
    assert "with bounding boxes indicating all locations" in grounded.text


def test_518px_image_gives_1369_tokens_per_slot(full_study):
    adapter = load_adapter("tiny", image_size=518)
    inputs = adapter.build_inputs(full_study)
    assert inputs.pixel_values.shape == (3, 3, 518, 518)
    for slot in (ImageSlot.FRONTAL, ImageSlot.LATERAL, ImageSlot.PRIOR):
        assert int((inputs.layout.image_slot == slot).sum()) == 1369
    batch = adapter.collate([inputs])
    with torch.no_grad():
        out = adapter.model(**adapter.to_device(batch))  # the model accepts the expansion
    assert out.logits.shape[1] == len(inputs.input_ids)


def test_missing_frontal_image_error_names_the_fix(tiny_adapter, radiograph):
    with pytest.raises(ValueError, match="Study.frontal"):
        tiny_adapter.build_inputs(Study("x", lateral=radiograph()))


def test_report_required_for_teacher_forcing(tiny_adapter, radiograph):
    with pytest.raises(ValueError, match="with_report=False"):
        tiny_adapter.build_inputs(Study("x", frontal=radiograph()), with_report=True)


def test_generated_positions_are_tagged(tiny_adapter, radiograph):
    enc = tiny_adapter.encode_prompt(Study("g", frontal=radiograph()))
    lay = enc.layout.with_generated(7)
    assert len(lay) == len(enc.input_ids) + 7
    assert lay.counts()["generated"] == 7 and (lay.kind[-7:] == TokenKind.GENERATED).all()


def test_token_filters_select_by_kind(tiny_adapter, full_study):
    from radinterp.models.tokens import TOKEN_FILTERS

    lay = tiny_adapter.encode_prompt(full_study, with_report=True).layout
    keep = TOKEN_FILTERS.get("maira2_sae")(lay)
    kept = set(lay.kind[keep].tolist())
    assert kept == {TokenKind.PROMPT_CONTENT, TokenKind.REPORT}
    assert keep.sum() == lay.counts()["prompt_content"] + lay.counts()["report"]
    assert TOKEN_FILTERS.get("image")(lay).sum() == 3 * tiny_adapter.n_image_tokens
    with pytest.raises(KeyError, match="maira2_sae"):
        TOKEN_FILTERS.get("no_such_filter")
