"""Finding registry: what can be planted, how it is sampled, drawn and changed over time.

Each :class:`Finding` samples its attributes for a patient, may override the anatomy (a
cardiomegaly enlarges the heart, a rib fracture breaks a rib), draws itself onto the density
layers and returns its pixel mask. Findings register in :data:`FINDINGS`; an unknown name
raises with the list of valid ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radinterp.data.phantoms.anatomy import Layers, Patient
from radinterp.data.phantoms.canvas import Canvas
from radinterp.registry import Registry

Attrs = dict[str, Any]

CHANGE_KINDS = ("new", "resolved", "increased", "decreased", "unchanged")
"""How a finding differs from the prior study."""


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


def get_finding(name: str) -> Finding:
    _ensure_loaded()
    return FINDINGS.get(name)


def finding_names() -> list[str]:
    _ensure_loaded()
    return FINDINGS.names()


def _ensure_loaded() -> None:
    # the concrete findings live in their own modules; importing them registers them
    from radinterp.data.phantoms import devices, lesions  # noqa: F401


def pick_side(rng: np.random.Generator, bilateral: float = 0.0) -> str:
    r = rng.random()
    if r < bilateral:
        return "bilateral"
    return "right" if rng.random() < 0.5 else "left"


def sides_of(side: str) -> tuple[str, ...]:
    return ("right", "left") if side == "bilateral" else (side,)


COOCCURRENCE: dict[tuple[str, str], float] = {
    # (given, then) -> multiplier on the rate of "then" when "given" is present
    ("cardiomegaly", "edema"): 3.0,
    ("cardiomegaly", "pleural_effusion"): 2.0,
    ("edema", "pleural_effusion"): 2.5,
    ("endotracheal_tube", "nasogastric_tube"): 4.0,
    ("endotracheal_tube", "central_venous_catheter"): 2.5,
    ("sternotomy_wires", "cardiomegaly"): 1.8,
    ("sternotomy_wires", "pacemaker"): 2.0,
    ("consolidation", "pleural_effusion"): 1.5,
    ("pneumothorax", "rib_fracture"): 3.0,
}
"""Controlled co-occurrence: ordered pairs and their rate multipliers."""


def sample_finding_set(
    rng: np.random.Generator, rates: dict[str, float], normal_fraction: float, cooccur: bool
) -> list[str]:
    """Names of the findings one study carries ([] = normal)."""
    if rng.random() < normal_fraction or not rates:
        return []
    names = list(rates)
    for _ in range(20):  # rejection-sample a non-empty set
        chosen: list[str] = []
        for name in names:
            rate = rates[name]
            if cooccur:
                for (given, then), mult in COOCCURRENCE.items():
                    if then == name and given in chosen:
                        rate = min(0.95, rate * mult)
            if rng.random() < rate:
                chosen.append(name)
        if chosen:
            return chosen
    return [names[int(rng.integers(len(names)))]]
