"""Finding registry: what can be planted, how it is sampled, and which label it plants.

The interface (:class:`Finding`) and the registry live in
:mod:`radinterp.data.phantoms.finding_base`; importing :mod:`support_devices` and :mod:`lesions` here
registers the concrete findings. An unknown name raises with the list of valid ones.
"""

from __future__ import annotations

import numpy as np

from radinterp.data.phantoms import lesions, support_devices  # noqa: F401  (importing registers them)
from radinterp.data.phantoms.finding_base import FINDINGS, Finding


def get_finding(name: str) -> Finding:
    return FINDINGS.get(name)


def finding_names() -> list[str]:
    return FINDINGS.names()


def finding_label(name: str) -> str:
    """Report label a phantom finding plants: its device subtype, else its CheXpert
    observation (``"lung_nodule"`` -> ``"Lung Lesion"``, ``"pacemaker"`` -> ``"Pacemaker"``)."""
    return get_finding(name).label


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
