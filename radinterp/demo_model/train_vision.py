"""Stage 1: pretrain the DINOv2-style vision tower with a multi-label probe on planted findings.

The probe reads each patch token of the last hidden state -- exactly the tokens LLaVA hands
to the projector (``vision_feature_layer=-1``, CLS dropped); an image's logit is the max over
its patches -- so what the tower learns to encode is where the language model will look for it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm
from transformers import Dinov2Model

from radinterp.config import BaseConfig, write_json_atomic
from radinterp.demo_model.build import llava_config
from radinterp.demo_model.ckpt import load_checkpoint, save_checkpoint
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.data import as_rgb
from radinterp.devices import module_device
from radinterp.metrics import auroc

log = logging.getLogger(__name__)

VISION_FILE = "vision.safetensors"


@dataclass
class VisionTrainConfig(BaseConfig):
    """Stage-1 hyper-parameters."""

    epochs: int = 8
    """Passes over the training studies (a ViT from scratch needs thousands of steps)."""
    batch_size: int = 32
    """Images per step."""
    lr: float = 7e-4
    """Peak AdamW learning rate (linear warm-up, cosine decay to 5%)."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Linear warm-up steps."""
    seed: int = 0
    """Seed of the initialisation and the data order."""
    bf16: bool = True
    """bfloat16 autocast (fast on CPUs with AMX / AVX-512 BF16, and on GPUs)."""
    dense_weight: float = 1.0
    """Weight of the per-patch loss from the finding masks (used when masks exist)."""
    dense_pos_weight: float = 5.0
    """Positive-class weight of the per-patch loss (finding patches are rare)."""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def patch_tokens(tower: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, n_patches, d_vis): what LLaVA feeds its projector (CLS dropped)."""
    out = tower(pixel_values=pixels, output_hidden_states=True)
    return out.hidden_states[-1][:, 1:]


class Probe(nn.Module):
    """Per-patch LayerNorm + linear -> (N, P, F) logits; the image logit is their max.

    Max pooling (multiple-instance learning) makes individual patch tokens carry the finding,
    which is what the language model reads through the projector.
    """

    def __init__(self, d_vis: int, n_findings: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_vis)
        self.head = nn.Linear(d_vis, n_findings)

    def patch_logits(self, tokens_NPD: torch.Tensor) -> torch.Tensor:  # -> (N, P, F)
        return self.head(self.norm(tokens_NPD))

    def forward(self, tokens_NPD: torch.Tensor) -> torch.Tensor:  # -> (N, F)
        return self.patch_logits(tokens_NPD).amax(1)


def probe_loss(
    tower: nn.Module, probe: Probe, pixels_NHW: torch.Tensor, targets_NF: torch.Tensor,
    image_loss: nn.Module, tcfg: VisionTrainConfig, patch_targets: torch.Tensor | None = None,
    patch_known: torch.Tensor | None = None,
) -> torch.Tensor:
    """Stage-1 loss of one batch: max-pooled image BCE plus, with masks, per-patch BCE."""
    dev = module_device(tower)  # batches live on the CPU; the model may not
    pixels_NHW, targets_NF = pixels_NHW.to(dev), targets_NF.to(dev)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=tcfg.bf16):
        per_patch = probe.patch_logits(patch_tokens(tower, as_rgb(pixels_NHW))).float()  # (B, P, F)
    loss = image_loss(per_patch.amax(1), targets_NF)
    if patch_targets is not None:  # dense supervision from the finding masks
        w = patch_known.to(dev).unsqueeze(1).float().expand_as(per_patch)  # (B, P, F)
        dense = nn.functional.binary_cross_entropy_with_logits(
            per_patch, patch_targets.to(dev).float(), weight=w,
            pos_weight=torch.full((per_patch.shape[-1],), tcfg.dense_pos_weight, device=dev))
        loss = loss + tcfg.dense_weight * dense
    return loss


def image_loss_fn(targets_NF: torch.Tensor) -> nn.Module:
    """Image-level BCE with positive weights sqrt(neg / pos) (capped) per finding."""
    pos_weight = ((len(targets_NF) - targets_NF.sum(0)) / targets_NF.sum(0).clamp(min=1)).clamp(max=10)
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight ** 0.5)


def new_tower(cfg: DemoModelConfig, seed: int) -> Dinov2Model:
    torch.manual_seed(seed)
    return Dinov2Model(llava_config(cfg, _dummy_text_config(), 0).vision_config)


def _dummy_text_config():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, vocab_size=8)


def _lr(step: int, total: int, tcfg: VisionTrainConfig) -> float:
    if step < tcfg.warmup_steps:
        return tcfg.lr * (step + 1) / tcfg.warmup_steps
    t = (step - tcfg.warmup_steps) / max(1, total - tcfg.warmup_steps)
    return tcfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


@torch.no_grad()
def predict(tower, probe, pixels_NHW: torch.Tensor, bf16: bool, batch: int = 128) -> torch.Tensor:
    tower.eval(), probe.eval()
    dev = module_device(tower)
    outs = []
    for i in range(0, len(pixels_NHW), batch):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            px = as_rgb(pixels_NHW[i : i + batch].to(dev))
            outs.append(probe(patch_tokens(tower, px)).float().cpu())
    return torch.sigmoid(torch.cat(outs))


def evaluate(tower, probe, pixels, targets, findings, bf16: bool) -> dict:
    p = predict(tower, probe, pixels, bf16).numpy()
    y = targets.numpy().astype(bool)
    per = {
        f: {"auroc": auroc(y[:, j], p[:, j]), "accuracy": float(((p[:, j] > 0.5) == y[:, j]).mean()),
            "n_pos": int(y[:, j].sum())}
        for j, f in enumerate(findings)
    }
    aucs = [v["auroc"] for v in per.values() if not np.isnan(v["auroc"])]
    return {"mean_auroc": float(np.mean(aucs)) if aucs else float("nan"), "per_finding": per}


def train_vision(
    cfg: DemoModelConfig, tcfg: VisionTrainConfig, pixels: torch.Tensor, targets: torch.Tensor,
    val_pixels: torch.Tensor, val_targets: torch.Tensor, out_dir: Path, progress: bool = True,
    patch_targets: torch.Tensor | None = None, patch_known: torch.Tensor | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Train (resuming from ``out_dir/ckpt``), write ``vision.safetensors`` + ``metrics.json``.

    The data stay on the CPU; each batch moves to ``device`` (e.g. ``"cuda"``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if (out_dir / VISION_FILE).exists():
        log.info("stage 1 already done: %s", out_dir / VISION_FILE)
        import json

        return json.loads((out_dir / "metrics.json").read_text())
    tower, probe = new_tower(cfg, tcfg.seed), Probe(cfg.vision_hidden, len(cfg.findings))
    tower.to(device), probe.to(device)
    named = {f"tower.{k}": p for k, p in tower.named_parameters()}
    named.update({f"probe.{k}": p for k, p in probe.named_parameters()})
    optim = torch.optim.AdamW(named.values(), lr=tcfg.lr, weight_decay=tcfg.weight_decay)
    state = load_checkpoint(out_dir / "ckpt", named, optim) or {"epoch": 0, "step": 0}
    n = len(pixels)
    steps_per_epoch = math.ceil(n / tcfg.batch_size)
    total = steps_per_epoch * tcfg.epochs
    loss_fn = image_loss_fn(targets).to(device)
    step = state["step"]
    for epoch in range(state["epoch"], tcfg.epochs):
        tower.train(), probe.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(tcfg.seed * 1000 + epoch))
        t0, losses = time.time(), []
        bar = tqdm(range(0, n, tcfg.batch_size), desc=f"vision epoch {epoch}", disable=not progress)
        for i in bar:
            idx = order[i : i + tcfg.batch_size]
            for g in optim.param_groups:
                g["lr"] = _lr(step, total, tcfg)
            loss = probe_loss(tower, probe, pixels[idx], targets[idx], loss_fn, tcfg,
                              None if patch_targets is None else patch_targets[idx],
                              None if patch_known is None else patch_known[idx])
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(named.values(), 1.0)
            optim.step()
            step += 1
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        val = evaluate(tower, probe, val_pixels, val_targets, cfg.findings, tcfg.bf16)
        log.info("vision epoch %d: loss %.4f, val mean AUROC %.3f (%.0f s)", epoch,
                 float(np.mean(losses)), val["mean_auroc"], time.time() - t0)
        save_checkpoint(out_dir / "ckpt", named, optim,
                        {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)),
                         "val_mean_auroc": val["mean_auroc"]})
    metrics = evaluate(tower, probe, val_pixels, val_targets, cfg.findings, tcfg.bf16)
    metrics.update(n_train=n, n_val=len(val_pixels), config=tcfg.to_dict())
    save_file({k: p.detach().cpu().contiguous() for k, p in named.items()}, str(out_dir / VISION_FILE))
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def strip_prefix(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of a stage-1 / stage-2 state dict under ``prefix`` (``"tower."``, ``"probe."``),
    with the prefix removed: what the module's ``load_state_dict`` takes."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def load_probe(cfg: DemoModelConfig, out_dir: Path) -> Probe:
    """The stage-1 probe (per-patch finding logits on the tower's patch tokens)."""
    sd = load_file(str(out_dir / VISION_FILE))
    probe = Probe(cfg.vision_hidden, len(cfg.findings))
    probe.load_state_dict(strip_prefix(sd, "probe."))
    return probe.eval()


def load_tower_weights(tower: nn.Module, out_dir: Path) -> None:
    """Copy stage-1 tower weights into ``tower`` (a ``Dinov2Model``, e.g. the LLaVA's)."""
    sd = load_file(str(out_dir / VISION_FILE))
    tower_sd = strip_prefix(sd, "tower.")
    missing, unexpected = tower.load_state_dict(tower_sd, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"stage-1 weights do not fit the tower: missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}; train stage 1 with the same DemoModelConfig"
        )
