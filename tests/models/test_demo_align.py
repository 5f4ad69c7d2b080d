"""Stage 1.5 of the demo model: projector alignment to the LM's word embeddings."""

from __future__ import annotations

import pytest
import torch

from radinterp.demo_model.align import (
    ANCHOR_TEXT,
    AlignConfig,
    align_projector,
    alignment_targets,
    anchor_embeddings,
    patch_probabilities,
)
from radinterp.demo_model.config import DEMO_FINDINGS
from radinterp.demo_model.train_vision import Probe


@pytest.fixture(scope="module")
def tokenizer():
    from radinterp.models.maira2 import tiny_tokenizer

    return tiny_tokenizer()


def test_every_demo_finding_has_an_anchor_and_anchors_are_mean_word_embeddings(tokenizer):
    assert set(DEMO_FINDINGS) <= set(ANCHOR_TEXT)
    torch.manual_seed(0)
    emb = torch.nn.Embedding(len(tokenizer), 8)
    anchors, bg = anchor_embeddings(emb, tokenizer, ("pleural_effusion", "pacemaker"))
    ids = tokenizer(" pleural effusion", add_special_tokens=False)["input_ids"]
    assert len(ids) > 1  # a multi-token name: its anchor is the mean of the pieces
    torch.testing.assert_close(anchors[0], emb.weight[ids].mean(0).detach())
    assert anchors.shape == (2, 8) and bg.shape == (8,)
    with pytest.raises(ValueError, match="ANCHOR_TEXT"):
        anchor_embeddings(emb, tokenizer, ("pleural_effusion", "not_a_finding"))


def test_alignment_targets_mix_background_and_finding_words():
    anchors = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    bg = torch.tensor([0.5, 0.5])
    probs = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.5, 0.0]]])  # (N=1, P=3, F=2)
    t = alignment_targets(probs, anchors, bg)
    torch.testing.assert_close(t[0, 0], bg)
    torch.testing.assert_close(t[0, 1], anchors[0])
    torch.testing.assert_close(t[0, 2], torch.tensor([0.75, 0.25]))
    # image-level targets: every patch says what the image's most certain patch says
    img = alignment_targets(probs, anchors, bg, pool="image")
    for p in range(3):
        torch.testing.assert_close(img[0, p], anchors[0])
    with pytest.raises(ValueError, match="pool"):
        alignment_targets(probs, anchors, bg, pool="mean")
    with pytest.raises(ValueError, match="pool"):
        AlignConfig(pool="cls")


def test_patch_probabilities_are_the_probe_sigmoids():
    torch.manual_seed(0)
    probe = Probe(6, 3)
    feats = torch.randn(5, 4, 6)
    p = patch_probabilities(probe, feats, batch=2)
    torch.testing.assert_close(p, torch.sigmoid(probe.patch_logits(feats)).detach())


def test_align_projector_fits_the_targets():
    """A MAIRA-2-style MLP projector learns a per-patch mapping; the loss falls by 10x."""
    torch.manual_seed(0)
    feats = torch.randn(256, 4, 6)
    w = torch.randn(6, 10)
    targets = feats @ w / 3
    proj = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.GELU(), torch.nn.Linear(32, 10))
    res = align_projector(proj, feats, targets, AlignConfig(steps=300, batch_size=32, lr=1e-2), progress=False)
    first, last = sum(res["losses"][:10]) / 10, sum(res["losses"][-10:]) / 10
    assert last < first / 10
    with torch.no_grad():
        held = torch.nn.functional.mse_loss(proj(feats[:16]), targets[:16])
    assert held < res["target_variance"] / 5
    with pytest.raises(ValueError, match="steps"):
        AlignConfig(steps=-1)
