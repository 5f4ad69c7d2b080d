"""Label vocabulary shared by the phantom generator and the report labeler.

Values: 1 positive, 0 negative, -1 uncertain; an observation the report does not address is
left out (blank). Which values state a finding: :mod:`radinterp.labels.policy`.
"""

from __future__ import annotations

from collections.abc import Iterable

from radinterp.labels.policy import is_positive

CHEXPERT_OBSERVATIONS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
"""The 14 CheXpert observations, in CheXpert's order."""

DEVICE_SUBTYPES: tuple[str, ...] = (
    "Pacemaker",
    "Endotracheal Tube",
    "Nasogastric Tube",
    "NG Tube Malpositioned",
    "Central Venous Catheter",
    "Sternotomy Wires",
)
"""Support-device subtypes (Nasogastric Tube covers naso/orogastric and enteric tubes)."""

ALL_LABELS: tuple[str, ...] = CHEXPERT_OBSERVATIONS + DEVICE_SUBTYPES

PATHOLOGIES: tuple[str, ...] = tuple(
    o for o in CHEXPERT_OBSERVATIONS if o not in ("No Finding", "Support Devices")
)
"""Observations whose positive or uncertain mention rules out "No Finding"."""

_DEVICE_PARTS = tuple(d for d in DEVICE_SUBTYPES if d != "NG Tube Malpositioned")


def merge_labels(parts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Combine mention-level labels CheXpert-style: positive > uncertain > negative."""
    rank = {1: 3, -1: 2, 0: 1}
    out: dict[str, int] = {}
    for part in parts:
        for obs, v in part.items():
            if obs not in out or rank[v] > rank[out[obs]]:
                out[obs] = v
    return out


def finalize_labels(labels: dict[str, int]) -> dict[str, int]:
    """Derive "Support Devices" from subtypes and "No Finding" from the pathologies."""
    out = dict(labels)
    subs = [out[d] for d in _DEVICE_PARTS if d in out]
    if subs:
        best = 1 if 1 in subs else (-1 if -1 in subs else 0)
        cur = out.get("Support Devices")
        if cur is None or {1: 3, -1: 2, 0: 1}[best] > {1: 3, -1: 2, 0: 1}[cur]:
            out["Support Devices"] = best
    if any(is_positive(out, o) for o in PATHOLOGIES):
        out.pop("No Finding", None)
    else:
        out["No Finding"] = 1
    return {k: out[k] for k in ALL_LABELS if k in out}
