"""Stage 1.5: align the projector's output with the language model's word embeddings.

LLaVA's first stage trains the projector so that image tokens look like text to the frozen
language model. We have something better than captions: the stage-1 probe says, per patch,
which planted finding it sees. The projector is trained (mean squared error, no language
model forward) to map each patch token to

    e_bg + sum_f p_f(patch) * (e_f - e_bg)

where ``e_f`` is the mean input embedding of the finding's name (" pleural effusion", ...),
``e_bg`` that of " normal", and ``p_f`` the probe's per-patch probability. A patch with an
effusion then reads to SmolLM2 like the word "effusion", which its pretrained in-context
copying already knows how to use; stage 2 fine-tunes the projector further with the LM.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from radinterp.config import BaseConfig
from radinterp.devices import module_device

log = logging.getLogger(__name__)

ANCHOR_TEXT: dict[str, str] = {
    "cardiomegaly": " cardiomegaly",
    "sternotomy_wires": " sternotomy wires",
    "endotracheal_tube": " endotracheal tube",
    "pneumothorax": " pneumothorax",
    "edema": " pulmonary edema",
    "consolidation": " consolidation",
    "pleural_effusion": " pleural effusion",
    "atelectasis": " atelectasis",
    "lung_nodule": " pulmonary nodule",
    "rib_fracture": " rib fracture",
    "pacemaker": " pacemaker",
    "nasogastric_tube": " nasogastric tube",
    "central_venous_catheter": " central venous catheter",
}
"""Words whose embeddings a patch showing the finding is mapped to (report vocabulary)."""
BACKGROUND_TEXT = " normal"
POOLS = ("patch", "image")


@dataclass
class AlignConfig(BaseConfig):
    """Stage-1.5 hyper-parameters (projector only; cheap: no language-model forward)."""

    steps: int = 400
    """Optimizer steps."""
    batch_size: int = 64
    """Images per step."""
    lr: float = 1e-3
    """Peak AdamW learning rate (cosine decay to 10%)."""
    seed: int = 0
    """Seed of the data order."""
    pool: str = "patch"
    """``patch``: each patch maps to its own findings (the probe's per-patch probability);
    ``image``: every patch maps to the image's findings (the probe's max over patches), so all
    64 image tokens say "pneumothorax" when one patch shows it."""

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError("steps must be >= 0 and batch_size >= 1")
        if self.pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {self.pool!r}")


def anchor_embeddings(embedding: nn.Embedding, tokenizer, findings: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(F, d) mean input embeddings of each finding's anchor text and (d,) of the background."""
    missing = [f for f in findings if f not in ANCHOR_TEXT]
    if missing:
        raise ValueError(f"no anchor text for findings {missing}; add them to ANCHOR_TEXT")
    w = embedding.weight.detach().float().cpu()

    def mean_emb(text: str) -> torch.Tensor:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return w[torch.tensor(ids)].mean(0)

    return torch.stack([mean_emb(ANCHOR_TEXT[f]) for f in findings]), mean_emb(BACKGROUND_TEXT)


@torch.no_grad()
def patch_probabilities(probe: nn.Module, feats_NPD: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """(N, P, F) sigmoid of the stage-1 probe's per-patch logits."""
    probe.eval()
    dev = module_device(probe)
    return torch.cat([torch.sigmoid(probe.patch_logits(feats_NPD[i : i + batch].to(dev).float())).cpu()
                      for i in range(0, len(feats_NPD), batch)])


def alignment_targets(
    probs_NPF: torch.Tensor, anchors_FD: torch.Tensor, bg_D: torch.Tensor, pool: str = "patch"
) -> torch.Tensor:
    """(N, P, d): background embedding plus each finding's offset weighted by its probability
    (the patch's own, or with ``pool="image"`` the image's: the max over its patches)."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if pool == "image":
        probs_NPF = probs_NPF.amax(1, keepdim=True).expand_as(probs_NPF)
    return bg_D + probs_NPF @ (anchors_FD - bg_D)


def align_projector(
    projector: nn.Module, feats_NPD: torch.Tensor, targets_NPD: torch.Tensor, acfg: AlignConfig,
    progress: bool = True,
) -> dict:
    """Train ``projector`` in place on (features -> targets); returns the loss history."""
    if acfg.steps == 0:
        return {"losses": []}
    params = [p for p in projector.parameters()]
    for p in params:
        p.requires_grad_(True)
    optim = torch.optim.AdamW(params, lr=acfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(acfg.seed)
    losses = []
    projector.train()
    dev = module_device(projector)  # features and targets stay on the CPU; batches move here
    bar = tqdm(range(acfg.steps), desc="align projector", disable=not progress)
    for step in bar:
        scale = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / acfg.steps))
        for g in optim.param_groups:
            g["lr"] = acfg.lr * scale
        idx = torch.randint(len(feats_NPD), (acfg.batch_size,), generator=gen)
        loss = nn.functional.mse_loss(projector(feats_NPD[idx].to(dev).float()), targets_NPD[idx].to(dev))
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        losses.append(float(loss.item()))
        bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}")
    projector.eval()
    base = float(((targets_NPD - targets_NPD.mean((0, 1))) ** 2).mean())
    log.info("projector alignment: mse %.4f (target variance %.4f)", sum(losses[-20:]) / len(losses[-20:]), base)
    return {"losses": losses, "target_variance": base}
