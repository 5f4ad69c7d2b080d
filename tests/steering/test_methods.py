"""Steering methods on the real demo model: what each edit does to the residual at its site."""

from __future__ import annotations

import pytest
import torch

from radinterp.hooks import active_hook_count, capture, edit
from radinterp.models.tokens import ImageSlot, TokenKind
from steering import Direction, SiteStats, steer
from steering.methods import add_edit, clamp_edit, feature_code

from .conftest import SITE


@pytest.fixture(scope="module")
def batch(demo, studies):
    with_prior = next(s for s in studies if s.prior_frontal is not None)
    items = [demo.build_inputs(s) for s in (studies[0], with_prior)]
    return items, demo.collate(items)


@pytest.fixture(scope="module")
def base(demo, batch):
    """The unsteered residual and logits of ``batch``."""
    return forward(demo, batch[1])


@pytest.fixture(scope="module")
def stats(demo, studies):
    return SiteStats.measure(demo, studies[:3], SITE)


def forward(demo, batch, edits=None):
    """(residual at SITE as the next layer sees it (B, T, d), logits (B, T, V))."""
    with torch.no_grad(), edit(demo, edits or {}, batch=batch), capture(demo, [SITE], stop_early=False) as acts:
        logits = demo.model(**demo.to_device(batch)).logits
    return acts[SITE], logits


def test_scale_leaves_out_position_zero(stats, base):
    assert 0 < stats.norms["text"] < 5_000 and 0 < stats.norms["image"] < 5_000
    assert float(base[0][0, 0].norm()) > 10 * stats.norms["text"]  # what the measurement leaves out


def test_clamp_at_the_original_value_is_bit_identical(demo, sae, batch, base):
    items, b = batch
    h0, logits0 = base
    f = int(torch.argmax((sae.encode(h0) > 0).sum((0, 1))))  # the most active feature
    z = feature_code(sae, f, h0)  # (B, T), the same op the edit runs
    p = int(torch.argmax(z[0, : len(items[0].input_ids)]))
    assert z[0, p] > 0
    h1, logits1 = forward(demo, b, {SITE: clamp_edit(sae, f, float(z[0, p]), [p])})
    assert torch.equal(h1, h0) and torch.equal(logits1, logits0)
    h2, _ = forward(demo, b, {SITE: clamp_edit(sae, f, float(z[0, p]) + 3.0, [p])})
    moved = (h2 != h0).any(-1)  # (B, T)
    assert moved[:, p].all() and moved.sum() == 2  # that position, in both rows


def test_ablate_removes_only_the_features_contribution(demo, sae, batch, base):
    _, b = batch
    h0, _ = base
    f = int(torch.argmax((sae.encode(h0) > 0).sum((0, 1))))
    h1, _ = forward(demo, b, {SITE: clamp_edit(sae, f, 0.0, "all")})
    expected = -feature_code(sae, f, h0)[..., None] * sae.W_dec[f]  # (B, T, d)
    real = b.attention_mask.bool()
    torch.testing.assert_close((h1 - h0)[real], expected[real], atol=2e-3, rtol=1e-4)
    assert ((h1 != h0).any(-1) == (feature_code(sae, f, h0) > 0))[real].all()


def test_add_at_image_positions_leaves_prompt_positions_and_follows_slots(demo, batch, stats, base):
    items, b = batch
    d = 576
    vec = {"text": torch.eye(d)[0], "frontal": torch.eye(d)[1], "prior": torch.eye(d)[2]}
    direction = Direction(SITE, vec, "test")
    h0, _ = base
    h1, _ = forward(demo, b, {SITE: add_edit(direction, stats, 0.5, "image")})
    step = 0.5 * stats.norms["image"]
    for row, it in enumerate(items):
        n = len(it.input_ids)
        kind, slot = torch.from_numpy(it.layout.kind), torch.from_numpy(it.layout.image_slot)
        diff = (h1 - h0)[row, :n]  # (n, d)
        assert torch.equal(h1[row, :n][kind != TokenKind.IMAGE], h0[row, :n][kind != TokenKind.IMAGE])
        for s, axis in ((ImageSlot.FRONTAL, 1), (ImageSlot.PRIOR, 2)):
            at = slot == s
            if at.any():
                torch.testing.assert_close(diff[at][:, axis], torch.full((int(at.sum()),), step), atol=1e-2, rtol=1e-3)
                assert diff[at][:, 0].abs().max() < 1e-2
    assert (slot == ImageSlot.PRIOR).any()  # the second row has a prior image


def test_steer_context_manager_around_any_generation(demo, sae, studies, stats):
    """No batch passed: the block records what the adapter collates, so ``where="image"`` works
    around ``adapter.generate``; everything is removed afterwards."""
    study = studies[1]
    before = active_hook_count(demo.model)

    def run():
        with capture(demo, [SITE], stop_early=False, accumulate=True) as acts:
            demo.generate([study], max_new_tokens=2)
        return acts[SITE][0]  # (T, d): prompt + the generated token read back

    plain = run()
    with steer(demo, "add", sae=sae, feature=3, coef=1.0, where="image", stats=stats) as s:
        steered = run()
    assert set(s.edits) == {SITE}
    assert active_hook_count(demo.model) == before and "collate" not in vars(demo)
    kind = torch.from_numpy(demo.build_inputs(study).layout.kind)
    n = len(kind)
    img = kind == TokenKind.IMAGE
    assert torch.equal(steered[:n][~img], plain[:n][~img])
    step = (steered[:n][img] - plain[:n][img]) @ sae.W_dec[3] / sae.W_dec[3].norm()
    torch.testing.assert_close(step, torch.full_like(step, stats.norms["image"]), rtol=1e-3, atol=0.05)


def test_prompt_method_names_the_finding(demo, studies):
    with steer(demo, "prompt", finding="Pleural Effusion"):
        text = demo.build_inputs(studies[0]).text
    assert "Evaluate for pleural effusion." in text
    assert "Evaluate for" not in demo.build_inputs(studies[0]).text
