"""Configuration of CSR (concept-based similarity reasoning, arXiv 2503.06873)."""

from __future__ import annotations

from dataclasses import dataclass

from radinterp.config import BaseConfig

POOLS = ("avg", "max", "lse")
"""How the concept head pools its class activation map into a concept logit."""


@dataclass
class CSRConfig(BaseConfig):
    """Sizes and schedules of CSR's three stages on frozen patch features."""

    d_feature: int = 64
    """Channels of the feature-extractor head (the paper's backbone output, here a small
    conv head on the frozen vision-tower patch features)."""
    context_kernel: int = 1
    """Kernel side of the feature head's second convolution (1: each patch on its own; 3: a
    patch also sees its 8 neighbours)."""
    d_proj: int = 64
    """Dimension of the projector's output space, where prototypes live."""
    n_prototypes: int = 4
    """M: prototypes per concept."""
    pool: str = "max"
    """Concept head pooling of the CAM into a logit: avg (classic CAM), max, or lse
    (log-sum-exp, between the two; sharpness ``lse_r``)."""
    lse_r: float = 5.0
    """Sharpness of lse pooling (r -> 0: average, r -> inf: max)."""
    cam_temperature: float = 0.5
    """Temperature of the spatial softmax that turns a concept's CAM into weights for its
    local concept vector (lower: the vector comes from fewer patches)."""
    tau: float = 0.1
    """Temperature of the multi-prototype contrastive loss."""
    epochs_concept: int = 30
    """Epochs of stage 1 (concept model, BCE on concept labels)."""
    epochs_proto: int = 40
    """Epochs of stage 2 (projector + prototypes, multi-prototype contrastive loss)."""
    epochs_task: int = 100
    """Epochs of stage 3 (linear task head on prototype similarity scores)."""
    lr: float = 3e-3
    """AdamW learning rate of all stages."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    batch_size: int = 64
    """Studies per optimisation step."""
    seed: int = 0
    """Seed of initialisation and batch order; equal configs on equal data train equal models."""

    def __post_init__(self) -> None:
        for name in ("d_feature", "d_proj", "n_prototypes", "epochs_concept", "epochs_proto",
                     "epochs_task", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CSRConfig.{name} must be >= 1, got {getattr(self, name)}; "
                                 f"pass a positive {name}")
        if self.context_kernel < 1 or self.context_kernel % 2 == 0:
            raise ValueError(f"CSRConfig.context_kernel must be odd and >= 1, got "
                             f"{self.context_kernel}; pass 1 or 3")
        if self.pool not in POOLS:
            raise ValueError(f"CSRConfig.pool {self.pool!r} is unknown; pass one of {', '.join(POOLS)}")
        for name in ("lse_r", "cam_temperature", "tau", "lr"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"CSRConfig.{name} must be > 0, got {getattr(self, name)}; "
                                 f"pass a positive {name}")
        if self.weight_decay < 0:
            raise ValueError(f"CSRConfig.weight_decay must be >= 0, got {self.weight_decay}; "
                             "pass 0 or more")
