"""Training pieces of the demo model: checkpoints, data order, targets (metrics: tests/core/test_metrics.py)."""

from __future__ import annotations

import pytest
import torch

from radinterp.data import Study
from radinterp.demo_model.ckpt import load_checkpoint, save_checkpoint
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.data import planted_targets
from radinterp.demo_model.train_lm import Encoded, LMTrainConfig, _batch_indices, pad_batch, positive_spans
from radinterp.demo_model.train_vision import Probe, VisionTrainConfig, new_tower, patch_tokens


def _adam_step(lin: torch.nn.Linear, opt: torch.optim.Optimizer, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    loss = lin(torch.randn(4, 3, generator=g)).pow(2).sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_checkpoint_resume_continues_exactly(tmp_path):
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a = torch.optim.AdamW(a.parameters(), lr=0.1)
    for s in range(3):
        _adam_step(a, opt_a, s)
    save_checkpoint(tmp_path, dict(a.named_parameters()), opt_a, {"step": 3})
    _adam_step(a, opt_a, 3)
    opt_b = torch.optim.AdamW(b.parameters(), lr=0.1)
    state = load_checkpoint(tmp_path, dict(b.named_parameters()), opt_b)
    assert state["step"] == 3
    _adam_step(b, opt_b, 3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb)


def test_missing_checkpoint_is_none_and_mismatch_names_the_fix(tmp_path):
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(lin.parameters())
    assert load_checkpoint(tmp_path / "none", dict(lin.named_parameters()), opt) is None
    save_checkpoint(tmp_path, dict(lin.named_parameters()), opt, {"step": 0})
    with pytest.raises(ValueError, match="same config"):
        load_checkpoint(tmp_path, {"other.weight": lin.weight}, opt)


def test_batch_order_is_a_seeded_permutation_per_epoch():
    steps = [_batch_indices(s, 10, 3, seed=5) for s in range(3)]
    first_epoch = torch.cat(steps)
    assert len(set(first_epoch.tolist())) == 9  # no repeats within an epoch
    assert torch.equal(_batch_indices(1, 10, 3, seed=5), steps[1])  # resumable
    assert not torch.equal(_batch_indices(0, 10, 3, seed=6), steps[0])


def test_balanced_batches_raise_rare_findings_to_their_share():
    planted = torch.zeros(1000, 3)
    planted[:10, 0] = 1  # rare: 1 %
    planted[10:500, 1] = 1  # common: 49 %
    counts = torch.zeros(3)
    for s in range(1500):
        idx = _batch_indices(s, 1000, 4, seed=0, planted=planted, balance=0.5)
        counts += planted[idx].sum(0)
    share = counts / (1500 * 4)
    # half the slots: uniform over the 2 findings that occur; the other half: the data's mix
    assert share[0].item() == pytest.approx(0.5 * 0.01 + 0.5 * 0.5, abs=0.03)
    assert share[1].item() == pytest.approx(0.5 * 0.49 + 0.5 * 0.5, abs=0.03)
    assert share[2].item() == 0
    again = _batch_indices(7, 1000, 4, seed=0, planted=planted, balance=0.5)
    assert torch.equal(again, _batch_indices(7, 1000, 4, seed=0, planted=planted, balance=0.5))
    unbalanced = _batch_indices(7, 1000, 4, seed=0)
    assert torch.equal(_batch_indices(7, 1000, 4, seed=0, planted=planted, balance=0.0), unbalanced)


def test_pad_batch_targets_are_the_report_and_eos_only():
    items = [Encoded(torch.tensor([1, 2, 3, 4, 5]), 3), Encoded(torch.tensor([1, 2, 9]), 2)]
    ids, attn, target, weight = pad_batch(items, pad_id=0)
    assert ids.tolist() == [[1, 2, 3, 4, 5], [1, 2, 9, 0, 0]]
    assert attn.tolist() == [[1] * 5, [1, 1, 1, 0, 0]]
    assert target.tolist() == [[False, False, False, True, True], [False, False, True, False, False]]
    assert weight.tolist() == [[1.0] * 5, [1.0] * 5]


def test_pad_batch_weights_finding_sentence_tokens():
    pos = torch.tensor([False, False, False, True, False])
    items = [Encoded(torch.tensor([1, 2, 3, 4, 5]), 3, pos), Encoded(torch.tensor([1, 2, 9]), 2)]
    _, _, _, weight = pad_batch(items, pad_id=0, positive_weight=3.0)
    assert weight.tolist() == [[1.0, 1.0, 1.0, 3.0, 1.0], [1.0] * 5]


def test_positive_spans_are_the_sentences_stating_a_finding():
    report = ("No focal consolidation. Moderate right effusion. There is no pneumothorax. "
              "Possible right 6th rib fracture. The lungs are clear.")
    spans = [report[a:b] for a, b in positive_spans(report)]
    assert spans == ["Moderate right effusion.", "Possible right 6th rib fracture."]
    assert positive_spans("No pleural effusion or pneumothorax. Heart size is normal.") == []


def test_planted_targets_and_labels():
    studies = [Study("a", meta={"findings": {"pacemaker": {}}}), Study("b", meta={"findings": {}})]
    y = planted_targets(studies, ("pacemaker", "edema"))
    assert y.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="phantom"):
        planted_targets([Study("c")], ("edema",))


def test_probe_reads_the_llava_patch_tokens():
    cfg = DemoModelConfig()
    tower, probe = new_tower(cfg, 0), Probe(cfg.vision_hidden, len(cfg.findings))
    tokens = patch_tokens(tower, torch.randn(2, 3, cfg.image_size, cfg.image_size))
    assert tokens.shape == (2, 64, 192)
    assert probe(tokens).shape == (2, 13)
    torch.testing.assert_close(probe(tokens), probe.patch_logits(tokens).amax(1))


def test_configs_validate_with_the_fix():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        DemoModelConfig(image_size=100)
    with pytest.raises(ValueError, match="LoRA targets"):
        DemoModelConfig(lora_targets=("qq_proj",))
    with pytest.raises(ValueError, match="lr"):
        VisionTrainConfig(lr=0)
    with pytest.raises(ValueError, match="balance"):
        LMTrainConfig(balance=1.5)
