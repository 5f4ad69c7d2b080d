"""Report labels: the vocabulary, the rule labeler, the positive-label policy, sentences and
label agreement. Every stage imports these from here.

``label_report(text)`` -> {observation: 1 | 0 | -1} (blank omitted) for the 14 CheXpert
observations and the device subtypes; ``Labeler`` exposes mentions with negation,
uncertainty and laterality; ``is_positive(labels, name)`` is the one scoring policy (1 or -1
states a finding); ``split_sentences`` / ``sentence_spans`` split report text;
``agreement(pred, ref)`` scores labels against references. Which label a phantom finding
plants: ``radinterp.data.phantoms.finding_label``. Metrics: :mod:`radinterp.metrics`.
"""

from radinterp.labels.agreement import agreement
from radinterp.labels.labeler import Labeler, Mention, label_report
from radinterp.labels.observations import (
    ALL_LABELS,
    CHEXPERT_OBSERVATIONS,
    DEVICE_SUBTYPES,
    PATHOLOGIES,
    finalize_labels,
    merge_labels,
)
from radinterp.labels.policy import POSITIVE_VALUES, is_positive, positive_labels
from radinterp.labels.text import sentence_spans, split_sentences

__all__ = [
    "ALL_LABELS",
    "CHEXPERT_OBSERVATIONS",
    "DEVICE_SUBTYPES",
    "PATHOLOGIES",
    "POSITIVE_VALUES",
    "Labeler",
    "Mention",
    "agreement",
    "finalize_labels",
    "is_positive",
    "label_report",
    "merge_labels",
    "positive_labels",
    "sentence_spans",
    "split_sentences",
]
