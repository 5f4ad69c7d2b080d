"""The plantable-finding interface and its registry (a leaf: concrete findings import it).

Each :class:`Finding` samples its attributes for a patient, may override the anatomy (a
cardiomegaly enlarges the heart, a rib fracture breaks a rib), draws itself onto the density
layers and returns its pixel mask. Findings register in :data:`FINDINGS` under their name;
:mod:`radinterp.data.phantoms.findings` imports the concrete ones and looks them up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radinterp.data.phantoms.anatomy import Layers, Patient
from radinterp.data.phantoms.canvas import Canvas
from radinterp.registry import Registry

Attrs = dict[str, Any]


class Finding:
    """One kind of plantable finding. Subclasses set the class attributes and override
    :meth:`sample` and :meth:`draw`."""

    name: str = ""
    """Registry key (snake_case)."""
    observation: str = ""
    """CheXpert observation it makes positive."""
    default_rate: float = 0.1
    """Default share of (non-normal) studies that carry it."""
    device: bool = False
    """Support devices are white foreign bodies; they never grade as severity."""
    severities: tuple[str, ...] = ()
    """Ordered severity words; empty when the finding has no grade."""

    @property
    def label(self) -> str:
        """Report label it makes positive: its CheXpert observation (devices: their subtype)."""
        return self.observation

    def sample(self, rng: np.random.Generator, patient: Patient, cfg: Any = None) -> Attrs:
        raise NotImplementedError

    def anatomy(self, attrs: Attrs, patient: Patient) -> dict[str, Any]:
        """Patient fields to override when this finding is present (default: none)."""
        return {}

    def draw(self, layers: Layers, c: Canvas, patient: Patient, attrs: Attrs) -> np.ndarray:
        """Edit ``layers`` in place; return the finding's mask ``(S, S)`` bool."""
        raise NotImplementedError

    def regrade(self, attrs: Attrs, severity: int) -> Attrs:
        """Same finding at another severity (used for the prior study)."""
        out = dict(attrs)
        out["severity"] = severity
        if self.severities:
            out["grade"] = self.severities[severity]
        return out


FINDINGS: Registry[Finding] = Registry("phantom finding")


def register(cls: type[Finding]) -> type[Finding]:
    """Class decorator: instantiate and register under ``cls.name``."""
    FINDINGS.add(cls.name, cls())
    return cls


def pick_side(rng: np.random.Generator, bilateral: float = 0.0) -> str:
    r = rng.random()
    if r < bilateral:
        return "bilateral"
    return "right" if rng.random() < 0.5 else "left"


def sides_of(side: str) -> tuple[str, ...]:
    return ("right", "left") if side == "bilateral" else (side,)
