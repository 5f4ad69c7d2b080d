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
from radinterp.demo_model.ckpt import load_checkpoint, save_checkpoint
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.data import as_rgb
from radinterp.demo_model.train_vision import patch_tokens
from radinterp.models.image import ImagePreprocess

log = logging.getLogger(__name__)


@dataclass
class LMTrainConfig(BaseConfig):
    """Stage-2 hyper-parameters."""

    steps: int = 500
    """Optimizer steps."""
    batch_size: int = 4
    """Studies per step."""
    lr_projector: float = 1e-3
    """Peak learning rate of the projector."""
    lr_lora: float = 5e-4
    """Peak learning rate of the LoRA factors."""
    warmup_steps: int = 30
    """Linear warm-up steps (then cosine decay to 10%)."""
    seed: int = 0
    """Seed of the data order."""
    bf16: bool = True
    """Language model in bfloat16 with autocast (trainable weights stay float32)."""
    ckpt_every: int = 25
    """Checkpoint (resume point) every this many steps."""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.lr_projector <= 0 or self.lr_lora <= 0:
            raise ValueError("learning rates must be > 0")


@dataclass
class Encoded:
    """Token ids of one teacher-forced study and where its target starts."""

    ids: torch.Tensor  # (T,) long
    n_prompt: int


def encode_studies(adapter, studies) -> list[Encoded]:
    out = []
    for s in studies:
        enc = adapter.encode_prompt(s, with_report=True)
        out.append(Encoded(torch.tensor(enc.input_ids, dtype=torch.long), enc.n_prompt))
    return out


@torch.no_grad()
def vision_features(tower, pixels_NHW: torch.Tensor, batch: int = 64, progress: bool = True) -> torch.Tensor:
    """(N, n_patches, d_vis) float32 patch tokens of the frozen tower (computed in float32)."""
    tower.eval()
    outs = []
    for i in tqdm(range(0, len(pixels_NHW), batch), desc="vision features", disable=not progress):
        outs.append(patch_tokens(tower, as_rgb(pixels_NHW[i : i + batch])).float())
    return torch.cat(outs)


def pad_batch(items: list[Encoded], pad_id: int):
    """Right-padded ids (B, T), attention mask (B, T) and target mask (B, T)."""
    T = max(len(it.ids) for it in items)
    ids = torch.full((len(items), T), pad_id, dtype=torch.long)
    attn = torch.zeros((len(items), T), dtype=torch.long)
    target = torch.zeros((len(items), T), dtype=torch.bool)
    for b, it in enumerate(items):
        n = len(it.ids)
        ids[b, :n], attn[b, :n] = it.ids, 1
        target[b, it.n_prompt : n] = True
    return ids, attn, target


def teacher_forced_loss(model, ids, attn, target, feats_NPD: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over target positions (LLaVA's forward, head on targets only)."""
    lm = model.model.language_model
    embeds = lm.embed_tokens(ids)  # (B, T, d_model)
    img = model.model.multi_modal_projector(feats_NPD).to(embeds.dtype)  # (B, P, d_model)
    mask = (ids == model.config.image_token_id).unsqueeze(-1).expand_as(embeds)
    embeds = embeds.masked_scatter(mask, img.reshape(-1, embeds.shape[-1]))
    hidden = lm(inputs_embeds=embeds, attention_mask=attn).last_hidden_state  # (B, T, d_model)
    pred_pos = target[:, 1:]  # hidden at t-1 predicts token t
    logits = model.lm_head(hidden[:, :-1][pred_pos])  # (n_targets, vocab)
    return torch.nn.functional.cross_entropy(logits.float(), ids[:, 1:][pred_pos])


def _lr_scale(step: int, tcfg: LMTrainConfig) -> float:
    if step < tcfg.warmup_steps:
        return (step + 1) / tcfg.warmup_steps
    t = (step - tcfg.warmup_steps) / max(1, tcfg.steps - tcfg.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def _batch_indices(step: int, n: int, bs: int, seed: int) -> torch.Tensor:
    """Indices of step ``step``: epoch-wise seeded permutations, so a resumed run sees the same data."""
    per_epoch = n // bs
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 7919 + epoch))
    return order[k * bs : (k + 1) * bs]


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


def train_lm(
    model, tokenizer, cfg: DemoModelConfig, tcfg: LMTrainConfig, encoded: list[Encoded],
    feats: torch.Tensor, out_dir: Path, progress: bool = True,
) -> dict:
    """Train projector + LoRA in place (resuming from ``out_dir/ckpt``); returns loss history."""
    named = trainable_parameters(model)
    proj = [p for k, p in named.items() if "lora_" not in k]
    lora = [p for k, p in named.items() if "lora_" in k]
    groups = [{"params": proj, "lr": tcfg.lr_projector, "base": tcfg.lr_projector}]
    if lora:
        groups.append({"params": lora, "lr": tcfg.lr_lora, "base": tcfg.lr_lora})
    optim = torch.optim.AdamW(groups, weight_decay=0.0)
    state = load_checkpoint(out_dir / "ckpt", named, optim) or {"step": 0, "losses": []}
    step, losses = int(state["step"]), list(state["losses"])
    if step:
        log.info("resuming stage 2 at step %d / %d", step, tcfg.steps)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.train()
    t0 = time.time()
    bar = tqdm(range(step, tcfg.steps), desc="projector+LoRA", disable=not progress, initial=step,
               total=tcfg.steps)
    for step in bar:
        idx = _batch_indices(step, len(encoded), tcfg.batch_size, tcfg.seed)
        ids, attn, target = pad_batch([encoded[i] for i in idx], pad)
        for g in optim.param_groups:
            g["lr"] = g["base"] * _lr_scale(step, tcfg)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=tcfg.bf16):
            loss = teacher_forced_loss(model, ids, attn, target, feats[idx])
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(named.values(), 1.0)
        optim.step()
        losses.append(float(loss.item()))
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        if (step + 1) % 10 == 0:
            log.info("step %d/%d loss %.4f (%.2f s/step)", step + 1, tcfg.steps, np.mean(losses[-10:]),
                     (time.time() - t0) / (step + 1 - int(state["step"])))
        if (step + 1) % tcfg.ckpt_every == 0 or step + 1 == tcfg.steps:
            save_checkpoint(out_dir / "ckpt", named, optim, {"step": step + 1, "losses": losses})
    model.eval()
    return {"losses": losses, "final_loss_20": float(np.mean(losses[-20:])) if losses else None}


def make_adapter(model, tokenizer, cfg: DemoModelConfig):
    from radinterp.models.demo import DemoAdapter

    ad = DemoAdapter(model, tokenizer, ImagePreprocess(size=cfg.image_size), cfg.patch_size)
    ad.demo_config, ad.trained, ad.weights_dir = cfg, True, None
    return ad
