"""Rule-based CheXpert-style report labeler and label-agreement scoring.

``label_report(text)`` -> {observation: 1 | 0 | -1} (blank omitted) for the 14 CheXpert
observations and the device subtypes; ``Labeler`` exposes mentions with negation,
uncertainty and laterality; ``agreement(pred, ref)`` scores labels against references.
"""

from eval.labeler.labeler import Labeler, Mention, label_report
from eval.labeler.metrics import agreement
from radinterp.data.phantoms.labels import ALL_LABELS, CHEXPERT_OBSERVATIONS, DEVICE_SUBTYPES

__all__ = [
    "ALL_LABELS",
    "CHEXPERT_OBSERVATIONS",
    "DEVICE_SUBTYPES",
    "Labeler",
    "Mention",
    "agreement",
    "label_report",
]
