"""Stage 2: freeze the vision tower, train the projector + LoRA on teacher-forced reports.

The loss covers the report tokens and the closing end-of-sequence token only. Vision
features are computed once (the tower is frozen); the forward pass is LLaVA's own
(image-token embeddings replaced by projected patch tokens), written out so that the
language-model head runs on the report positions only.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from radinterp.config import BaseConfig
from radinterp.demo_model.ckpt import has_checkpoint, load_checkpoint, save_checkpoint
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.data import as_rgb
from radinterp.demo_model.train_vision import VisionTrainConfig, image_loss_fn, patch_tokens, probe_loss
from radinterp.devices import module_device
from radinterp.generation import pad_token_id
from radinterp.labels import label_report, positive_labels, sentence_spans
from radinterp.models.image import ImagePreprocess

log = logging.getLogger(__name__)

STAGE2_DIR = "lm"
"""Run-folder subfolder of stage 2 (its checkpoint is ``STAGE2_DIR/ckpt``)."""
STAGE3_DIR = "lm3"
"""Run-folder subfolder of stage 3 (image-level re-alignment + finding-balanced training)."""
STAGE4_DIR = "lm4"
"""Run-folder subfolder of stage 4 (a second finding-balanced round, learning rate restarted)."""
LM_STAGE_DIRS = {4: STAGE4_DIR, 3: STAGE3_DIR, 2: STAGE2_DIR}
"""Language-model stages and their subfolders, latest first."""


def latest_lm_checkpoint(run_dir: Path) -> tuple[int, Path] | None:
    """(stage, checkpoint folder) of the latest language-model stage of ``run_dir`` that saved one."""
    for stage, sub in LM_STAGE_DIRS.items():
        if has_checkpoint(run_dir / sub / "ckpt"):
            return stage, run_dir / sub / "ckpt"
    return None


@dataclass
class LMTrainConfig(BaseConfig):
    """Stage-2 hyper-parameters."""

    steps: int = 1400
    """Optimizer steps."""
    batch_size: int = 4
    """Studies per step."""
    lr_projector: float = 1e-3
    """Peak learning rate of the projector."""
    lr_lora: float = 1e-3
    """Peak learning rate of the LoRA factors."""
    warmup_steps: int = 30
    """Linear warm-up steps (then cosine decay to 10%)."""
    seed: int = 0
    """Seed of the data order."""
    bf16: bool = True
    """Language model in bfloat16 with autocast (trainable weights stay float32)."""
    ckpt_every: int = 25
    """Checkpoint (resume point) every this many steps."""
    train_tower: bool = True
    """Keep training the vision tower (with its stage-1 probe loss added) during stage 2."""
    lr_tower: float = 2e-4
    """Peak learning rate of the tower and probe when ``train_tower``."""
    aux_batch: int = 64
    """Stage-1 images per step for the tower's probe loss when ``train_tower``."""
    aux_weight: float = 1.0
    """Weight of that probe loss."""
    positive_weight: float = 3.0
    """Loss weight of the tokens of report sentences that state a finding (the rest: 1).
    Most report tokens are boilerplate; this puts the gradient where the image matters."""
    balance: float = 0.0
    """Fraction of each batch drawn finding-balanced: pick a finding uniformly, then a study in
    which it is planted. Rare findings (sternotomy wires, pneumothorax) then reach the LM as
    often as common ones; the rest of the batch keeps the data's own mix."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.lr_projector <= 0 or self.lr_lora <= 0:
            raise ValueError("learning rates must be > 0")
        if self.positive_weight <= 0:
            raise ValueError(f"positive_weight must be > 0, got {self.positive_weight}")
        if not 0.0 <= self.balance <= 1.0:
            raise ValueError(f"balance must be in [0, 1], got {self.balance}")


@dataclass
class Encoded:
    """Token ids of one teacher-forced study and where its target starts."""

    ids: torch.Tensor  # (T,) long
    n_prompt: int
    positive: torch.Tensor | None = None  # (T,) bool: token belongs to a sentence stating a finding


def positive_spans(report: str) -> list[tuple[int, int]]:
    """Character spans of the report's sentences that the labeler reads as stating a finding
    (positive or uncertain; "No Finding" does not count)."""
    spans = []
    for a, b in sentence_spans(report):
        labels = label_report(report[a:b])
        if any(name != "No Finding" for name in positive_labels(labels)):
            spans.append((a, b))
    return spans


def _positive_mask(enc, report: str) -> torch.Tensor:
    """(T,) bool over the whole (image-expanded) sequence: report tokens in a finding sentence."""
    out = torch.zeros(len(enc.input_ids), dtype=torch.bool)
    r0 = enc.text.rfind(report)
    spans = positive_spans(report) if r0 >= 0 else []
    for k in range(enc.n_prompt, len(enc.input_ids)):
        a, b = (int(x) - r0 for x in enc.char_spans[k])
        out[k] = any(a < e and b > s for s, e in spans)
    return out


def encode_studies(adapter, studies) -> list[Encoded]:
    out = []
    for s in studies:
        enc = adapter.encode_prompt(s, with_report=True)
        ids = torch.tensor(enc.input_ids, dtype=torch.long)
        out.append(Encoded(ids, enc.n_prompt, _positive_mask(enc, s.report)))
    return out


@torch.no_grad()
def vision_features(tower, pixels_NHW: torch.Tensor, batch: int = 64, progress: bool = True) -> torch.Tensor:
    """(N, n_patches, d_vis) float32 patch tokens of the frozen tower (computed in float32)."""
    tower.eval()
    dev = module_device(tower)
    outs = []
    for i in tqdm(range(0, len(pixels_NHW), batch), desc="vision features", disable=not progress):
        outs.append(patch_tokens(tower, as_rgb(pixels_NHW[i : i + batch].to(dev))).float().cpu())
    return torch.cat(outs)


def pad_batch(items: list[Encoded], pad_id: int, positive_weight: float = 1.0):
    """Right-padded ids (B, T), attention mask (B, T), target mask (B, T) and loss weights (B, T)."""
    T = max(len(it.ids) for it in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(items), T), dtype=torch.long)
    target = torch.zeros((len(items), T), dtype=torch.bool)
    weight = torch.ones((len(items), T))
    for b, it in enumerate(items):
        n = len(it.ids)
        ids[b, :n], attn[b, :n] = it.ids, 1
        target[b, it.n_prompt : n] = True
        if it.positive is not None:
            weight[b, :n][it.positive] = positive_weight
    return ids, attn, target, weight


def teacher_forced_loss(model, ids, attn, target, feats_NPD: torch.Tensor, weight=None) -> torch.Tensor:
    """Next-token cross-entropy over target positions, weighted mean (LLaVA's forward, head on
    targets only)."""
    lm = model.model.language_model
    embeds = lm.embed_tokens(ids)  # (B, T, d_model)
    img = model.model.multi_modal_projector(feats_NPD).to(embeds.dtype)  # (B, P, d_model)
    mask = (ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(mask, img.reshape(-1, embeds.shape[-1]))
    hidden = lm(inputs_embeds=embeds, attention_mask=attn).last_hidden_state  # (B, T, d_model)
    pred_pos = target[:, 1:]  # hidden at t-1 predicts token t
    logits = model.lm_head(hidden[:, :-1][pred_pos])  # (n_targets, vocab)
    ce = torch.nn.functional.cross_entropy(logits.float(), ids[:, 1:][pred_pos], reduction="none")
    if weight is None:
        return ce.mean()
    w = weight[:, 1:][pred_pos]
    return (ce * w).sum() / w.sum()


def _lr_scale(step: int, tcfg: LMTrainConfig) -> float:
    if step < tcfg.warmup_steps:
        return (step + 1) / tcfg.warmup_steps
    t = (step - tcfg.warmup_steps) / max(1, tcfg.steps - tcfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _batch_indices(
    step: int, n: int, bs: int, seed: int, planted: torch.Tensor | None = None, balance: float = 0.0
) -> torch.Tensor:
    """Indices of step ``step``: epoch-wise seeded permutations, so a resumed run sees the same data.

    With ``balance`` > 0 each slot is, with that probability, replaced by a study drawn
    finding-balanced from ``planted`` (N, F): a finding uniformly, then one of its positive
    studies (draws seeded by ``step``, so resumable too)."""
    per_epoch = n // bs
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    idx = order[k * bs : (k + 1) * bs].clone()
    if balance <= 0 or planted is None:
        return idx
    g = torch.Generator().manual_seed(seed * 104729 + step + 1)
    present = (planted > 0).any(0).nonzero().flatten()  # findings with at least one positive study
    for b in range(bs):
        if torch.rand((), generator=g) < balance:
            f = present[torch.randint(len(present), (), generator=g)]
            pos = (planted[:, f] > 0).nonzero().flatten()
            idx[b] = pos[torch.randint(len(pos), (), generator=g)]
    return idx


def trainable_parameters(model) -> dict[str, torch.nn.Parameter]:
    """Projector + LoRA factors (everything else frozen)."""
    for p in model.parameters():
        p.requires_grad_(False)
    named = {}
    for k, p in model.named_parameters():
        if k.startswith("model.multi_modal_projector.") or k.endswith((".lora_A", ".lora_B")):
            p.requires_grad_(True)
            named[k] = p
    return named


@dataclass
class VisionAux:
    """Stage-1 data and probe for training the tower on in stage 2 (its loss is added to the LM's)."""

    probe: torch.nn.Module
    pixels: torch.Tensor  # (N, H, W) float16
    targets: torch.Tensor  # (N, F)
    vision: VisionTrainConfig
    patch_targets: torch.Tensor | None = None  # (N, P, F) uint8
    patch_known: torch.Tensor | None = None  # (N, F) bool


def _aux_indices(step: int, n: int, bs: int, seed: int) -> torch.Tensor:
    return torch.randint(n, (bs,), generator=torch.Generator().manual_seed(seed * 100003 + step))


def train_lm(
    model, tokenizer, cfg: DemoModelConfig, tcfg: LMTrainConfig, encoded: list[Encoded],
    feats: torch.Tensor | None, out_dir: Path, progress: bool = True, *,
    pixels: torch.Tensor | None = None, aux: VisionAux | None = None,
    planted: torch.Tensor | None = None,
) -> dict:
    """Train projector + LoRA in place (resuming from ``out_dir/ckpt``); returns loss history.

    With ``tcfg.train_tower`` the vision tower trains too: ``pixels`` (N, H, W) replace the
    precomputed ``feats`` and ``aux`` adds the stage-1 probe loss on ``tcfg.aux_batch`` images
    per step, so the tower keeps learning the findings while the LM learns to read it.
    ``planted`` (N, F) planted findings of ``encoded`` are needed for ``tcfg.balance`` > 0.
    """
    if tcfg.balance > 0 and (planted is None or len(planted) != len(encoded)):
        raise ValueError("balance > 0 needs the planted findings (N, F) of the encoded studies")
    if tcfg.train_tower and (pixels is None or aux is None):
        raise ValueError("train_tower needs the studies' pixels and the stage-1 data (aux)")
    if not tcfg.train_tower and feats is None:
        raise ValueError("pass the frozen tower's features (feats) or set train_tower")
    named = trainable_parameters(model)
    proj = [p for k, p in named.items() if "lora_" not in k]
    lora = [p for k, p in named.items() if "lora_" in k]
    groups = [{"params": proj, "lr": tcfg.lr_projector, "base": tcfg.lr_projector}]
    if lora:
        groups.append({"params": lora, "lr": tcfg.lr_lora, "base": tcfg.lr_lora})
    tower = model.model.vision_tower
    dev = module_device(tower)  # data stay on the CPU; batches move to the model
    if tcfg.train_tower:
        vis = {f"tower.{k}": p for k, p in tower.named_parameters()}
        vis.update({f"probe.{k}": p for k, p in aux.probe.named_parameters()})
        for p in vis.values():
            p.requires_grad_(True)
        named.update(vis)
        groups.append({"params": list(vis.values()), "lr": tcfg.lr_tower, "base": tcfg.lr_tower,
                       "weight_decay": aux.vision.weight_decay})
        image_loss = image_loss_fn(aux.targets).to(dev)
    optim = torch.optim.AdamW(groups, weight_decay=0.0)
    state = load_checkpoint(out_dir / "ckpt", named, optim) or {"step": 0, "losses": []}
    step, losses = int(state["step"]), list(state["losses"])
    aux_losses = list(state.get("aux_losses", []))
    if step:
        log.info("resuming %s at step %d / %d", out_dir.name, step, tcfg.steps)
    pad = pad_token_id(tokenizer)
    model.train()
    tower.train(tcfg.train_tower)
    t0 = time.time()
    bar = tqdm(range(step, tcfg.steps), desc="projector+LoRA", disable=not progress, initial=step,
               total=tcfg.steps)
    for step in bar:
        idx = _batch_indices(step, len(encoded), tcfg.batch_size, tcfg.seed, planted, tcfg.balance)
        ids, attn, target, weight = (
            t.to(dev) for t in pad_batch([encoded[i] for i in idx], pad, tcfg.positive_weight))
        for g in optim.param_groups:
            g["lr"] = g["base"] * _lr_scale(step, tcfg)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=tcfg.bf16):
            f = (patch_tokens(tower, as_rgb(pixels[idx].to(dev))) if tcfg.train_tower
                 else feats[idx].to(dev))
            loss = teacher_forced_loss(model, ids, attn, target, f, weight)
        total = loss
        if tcfg.train_tower:
            j = _aux_indices(step, len(aux.pixels), tcfg.aux_batch, tcfg.seed)
            vloss = probe_loss(tower, aux.probe, aux.pixels[j], aux.targets[j], image_loss, aux.vision,
                               None if aux.patch_targets is None else aux.patch_targets[j],
                               None if aux.patch_known is None else aux.patch_known[j])
            total = loss + tcfg.aux_weight * vloss
            aux_losses.append(float(vloss.item()))
        optim.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(named.values(), 1.0)
        optim.step()
        losses.append(float(loss.item()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if (step + 1) % 10 == 0:
            log.info("step %d/%d loss %.4f%s (%.2f s/step)", step + 1, tcfg.steps, np.mean(losses[-10:]),
                     f" vision {np.mean(aux_losses[-10:]):.4f}" if aux_losses else "",
                     (time.time() - t0) / (step + 1 - int(state["step"])))
        if (step + 1) % tcfg.ckpt_every == 0 or step + 1 == tcfg.steps:
            save_checkpoint(out_dir / "ckpt", named, optim,
                            {"step": step + 1, "losses": losses, "aux_losses": aux_losses})
    model.eval()
    return {"losses": losses, "aux_losses": aux_losses,
            "final_loss_20": float(np.mean(losses[-20:])) if losses else None}


def make_adapter(model, tokenizer, cfg: DemoModelConfig):
    from radinterp.models.demo import DemoAdapter

    ad = DemoAdapter(model, tokenizer, ImagePreprocess(size=cfg.image_size), cfg.patch_size)
    ad.demo_config, ad.trained, ad.weights_dir = cfg, True, None
    return ad
