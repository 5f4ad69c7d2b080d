"""One chest X-ray study: the unit every stage iterates over."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

ImageLike = str | Path | Image.Image


@dataclass
class Study:
    """Inputs of one study in MAIRA-2's fixed order, plus optional references.

    Images may be file paths or PIL images; adapters load and preprocess them.
    """

    study_id: str
    """Unique id; activation rows and labels are keyed by it."""
    frontal: ImageLike | None = None
    """Current frontal image (required by MAIRA-2-style adapters)."""
    lateral: ImageLike | None = None
    """Current lateral image, optional."""
    prior_frontal: ImageLike | None = None
    """Prior frontal image, optional."""
    prior_report: str | None = None
    """Prior report; only used when a prior image is present."""
    indication: str | None = None
    """INDICATION section text; empty becomes "N/A" in the prompt."""
    technique: str | None = None
    """TECHNIQUE section text."""
    comparison: str | None = None
    """COMPARISON section text."""
    report: str | None = None
    """Reference findings text (the target for teacher-forced capture and evaluation)."""
    labels: dict[str, int] = field(default_factory=dict)
    """Reference labels: CheXpert observation (or device subtype) -> 1 / 0 / -1."""
    masks: dict[str, str] = field(default_factory=dict)
    """Finding name -> mask file path (pixel ground truth), where known."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Anything else the source knows (view, source dataset, healthy render path ...)."""

    def __post_init__(self) -> None:
        if not str(self.study_id):
            raise ValueError("Study.study_id must be a non-empty string")
