"""Configuration of CSR (concept-based similarity reasoning, arXiv 2503.06873)."""

from __future__ import annotations

from dataclasses import dataclass

from eval.methods.base import MethodOptions
from eval.methods.csr.tasks import TASKS

POOLS = ("avg", "max", "lse")
"""How the concept head pools its class activation map into a concept logit."""


@dataclass
class CSRConfig(MethodOptions):
    """CSR's sizes and schedules (three stages on frozen patch features), its task, and the
    interactions applied to the test split (``--opt key=value`` on the command line)."""

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
    background: bool = True
    """Also send the local vectors of the concepts a study lacks to M background prototypes
    under the same loss (an addition to the paper: without it the projector never sees
    concept-free features, which can then land on any concept's prototypes)."""
    push: bool = True
    """After stage 2, move each prototype onto its nearest training local concept vector, so
    every prototype is one training study's concept (its "prototype image")."""
    seed: int = 0
    """Seed of initialisation and batch order; equal configs on equal data train equal models
    (the run's --seed is added to it)."""
    task: str = "abnormal"
    """Task labels of the task head (see ``eval.methods.csr.tasks.TASKS``): ``abnormal``
    (normal vs any non-device finding, exclusive) or ``findings`` (multi-label, one class per
    concept)."""
    min_positives: int = 5
    """A finding is a concept when the train split holds at least this many studies with it."""
    prune_min_hit: float = 0.5
    """Simulated atlas refinement: prune prototypes whose own map's pointing game on the
    validation split is below this (each concept keeps its best prototype)."""
    box_outside_weight: float = 0.0
    """Spatial feedback: weight of the patches outside a positive box (0: ignore them)."""
    reject: tuple[str, ...] = ()
    """User interaction: concepts rejected (scores zeroed) on every test study."""
    prune: tuple[str, ...] = ()
    """User interaction: prototypes pruned from the atlas, as ``concept:index`` items."""
    feedback: str | None = None
    """User interaction: a JSON file of per-study feedback on the test split,
    ``{"reject": {study_id: [concept, ...]}, "boxes": [{"study_id": ..., "concept": ...,
    "box": [r0, c0, r1, c1], "sign": "positive" | "negative"}]}`` (patch grid, end exclusive)."""
    baselines: bool = True
    """Also score the baselines: the concept model's CAM alone and a random-prototype atlas."""

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
        TASKS.get(self.task)  # unknown task: the error lists the valid ones
        if self.min_positives < 1:
            raise ValueError(f"min_positives must be >= 1, got {self.min_positives}; pass e.g. 5")
        if not 0.0 <= self.prune_min_hit <= 1.0 or not 0.0 <= self.box_outside_weight <= 1.0:
            raise ValueError("prune_min_hit and box_outside_weight must lie in [0, 1]; "
                             "pass e.g. --opt prune_min_hit=0.5")
        for item in self.prune:
            name, sep, idx = str(item).rpartition(":")
            if not sep or not name or not idx.isdigit():
                raise ValueError(f"prune item {item!r} is not concept:index; pass e.g. "
                                 "--opt prune=edema:0,lung_nodule:2")
        if self.weight_decay < 0:
            raise ValueError(f"CSRConfig.weight_decay must be >= 0, got {self.weight_decay}; "
                             "pass 0 or more")
