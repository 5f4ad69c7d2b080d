"""Architecture of the demo model (saved as ``cfg.json`` beside its weights)."""

from __future__ import annotations

from dataclasses import dataclass, field

from radinterp.config import BaseConfig
from radinterp.data.phantoms.config import FINDING_ORDER

DEMO_FINDINGS = FINDING_ORDER
"""Phantom findings the demo model is trained to report (the phantom generator's names)."""


@dataclass
class DemoModelConfig(BaseConfig):
    """Shape of the demo model: DINOv2-style tower + MAIRA-2 projector + SmolLM2 with LoRA."""

    image_size: int = 224
    """Input side in pixels; 224 / 28 = 8 patches per side = 64 image tokens per image."""
    patch_size: int = 28
    """ViT patch side (DINOv2 / RAD-DINO use 14 at 518 px; 28 at 224 px keeps 64 tokens per
    image while the tower sees the phantoms' full resolution, which thin tubes need)."""
    vision_hidden: int = 192
    """Width of the vision tower."""
    vision_layers: int = 6
    """Depth of the vision tower."""
    vision_heads: int = 3
    """Attention heads of the vision tower (must divide ``vision_hidden``)."""
    projector_layers: int = 4
    """Linear layers in the projector (MAIRA-2 uses 4, GELU between them)."""
    lora_rank: int = 8
    """LoRA rank on the language model (0 = projector-only training)."""
    lora_alpha: float = 16.0
    """LoRA scale numerator: the update is ``(alpha / rank) * B @ A``."""
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj")
    """Names of the LM's linear layers that get LoRA (any of q/k/v/o/gate/up/down_proj)."""
    findings: tuple[str, ...] = field(default_factory=lambda: DEMO_FINDINGS)
    """Findings of the vision tower's pretraining head (and the reports' vocabulary)."""

    def __post_init__(self) -> None:
        self.lora_targets = tuple(self.lora_targets)
        self.findings = tuple(self.findings)
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}; "
                "use e.g. image_size=112, patch_size=14"
            )
        if self.vision_hidden % self.vision_heads:
            raise ValueError(
                f"vision_heads {self.vision_heads} must divide vision_hidden {self.vision_hidden}"
            )
        if self.projector_layers < 1:
            raise ValueError(f"projector_layers must be >= 1, got {self.projector_layers}")
        if self.lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0 disables LoRA), got {self.lora_rank}")
        valid = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
        bad = sorted(set(self.lora_targets) - valid)
        if bad:
            raise ValueError(f"unknown LoRA targets {bad}; valid: {sorted(valid)}")
        if not self.findings:
            raise ValueError("findings must name at least one phantom finding")

    @property
    def n_image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2
