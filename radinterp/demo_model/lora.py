"""Minimal LoRA for ``nn.Linear``: ``y = W x + (alpha / r) * B (A x)``, B initialised to 0.

Kept in-repo (no ``peft`` dependency). After training, :func:`merge_lora` folds the update
into ``W`` so the loaded model is a plain ``LlamaForCausalLM`` with the usual module paths.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))  # (r, d_in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # (d_out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., d_in) -> (..., d_out)
        a, b = self.lora_A.to(x.dtype), self.lora_B.to(x.dtype)
        update = nn.functional.linear(nn.functional.linear(x, a), b)  # (..., d_out)
        return self.base(x) + self.scale * update

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base layer with the update folded into its weight."""
        w = self.base.weight
        delta = (self.lora_B.float() @ self.lora_A.float()) * self.scale  # (d_out, d_in)
        w.copy_((w.float() + delta).to(w.dtype))
        return self.base


def add_lora(root: nn.Module, targets: tuple[str, ...], rank: int, alpha: float) -> int:
    """Wrap every ``nn.Linear`` under ``root`` whose attribute name is in ``targets``."""
    n = 0
    for module in list(root.modules()):
        for name, child in list(module.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(module, name, LoRALinear(child, rank, alpha))
                n += 1
    if n == 0:
        raise ValueError(f"no nn.Linear named any of {targets} under {type(root).__name__}")
    return n


def merge_lora(root: nn.Module) -> int:
    """Replace every :class:`LoRALinear` under ``root`` by its merged ``nn.Linear``."""
    n = 0
    for module in list(root.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged())
                n += 1
    return n


def lora_state_dict(root: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Only the LoRA factors, keyed by their full parameter names."""
    return {
        f"{prefix}{k}": v.detach().clone()
        for k, v in root.named_parameters()
        if k.endswith(".lora_A") or k.endswith(".lora_B")
    }
