"""What explainers and scorers know of each study: labels (with side and severity where the
phantom meta gives them), report sentences and word n-grams, planted findings.

Built once per run from the ``Study`` records (``study_evidence``) and shared by every
explainer and scorer, so no stage re-reads or re-labels a report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from autointerp.context import study_labels
from radinterp.data.study import Study
from radinterp.labels import positive_labels, split_sentences

_WORD = re.compile(r"[a-z][a-z'-]*")
STOPWORDS = frozenset(
    "a an the is are was were be been of in on at to and or with without there this that "
    "as for by from it its noted seen identified".split())
"""Words an n-gram may not start or end with (they carry no finding)."""


@dataclass
class StudyEvidence:
    """One study as the explainers see it."""

    study_id: str
    labels: list[str]
    """Positive labels (``radinterp.labels.positive_labels`` of ``study_labels``)."""
    label_items: set[str]
    """Labels plus their qualified forms from the phantom meta: ``"left Pleural Effusion"``,
    ``"moderate Pleural Effusion"``."""
    sentences: list[str]
    """The report's sentences (``radinterp.labels.split_sentences``)."""
    phrases: set[str]
    """Lower-case word n-grams (1 .. ``max_n``) of the report, not starting or ending with a
    stopword."""
    findings: set[str] = field(default_factory=set)
    """Planted phantom findings (``meta["findings"]`` keys); empty on other data."""


def ngrams(text: str, max_n: int = 3) -> set[str]:
    """Lower-case word n-grams of ``text`` per sentence, 1 <= n <= ``max_n``, trimmed of
    stopwords at both ends."""
    out: set[str] = set()
    for sent in split_sentences(text):
        words = _WORD.findall(sent.lower())
        for n in range(1, max_n + 1):
            for i in range(len(words) - n + 1):
                gram = words[i:i + n]
                if gram[0] not in STOPWORDS and gram[-1] not in STOPWORDS:
                    out.add(" ".join(gram))
    return out


def _qualified(study: Study, labels: list[str]) -> set[str]:
    """Side / severity forms of ``labels`` from the phantom meta (``meta["findings"]``)."""
    from radinterp.data.phantoms import finding_label

    items: set[str] = set()
    for name, attrs in (study.meta.get("findings") or {}).items():
        try:
            label = finding_label(name)
        except KeyError:
            continue
        if label not in labels or not isinstance(attrs, dict):
            continue
        for key in ("side", "severity"):
            if isinstance(attrs.get(key), str):
                items.add(f"{attrs[key]} {label}")
    return items


def study_evidence(study: Study, max_n: int = 3) -> StudyEvidence:
    """``study`` as a ``StudyEvidence``; see the class."""
    labels = positive_labels(study_labels(study))
    report = study.report or ""
    return StudyEvidence(
        study.study_id, labels, set(labels) | _qualified(study, labels),
        split_sentences(report) if report else [], ngrams(report, max_n),
        set((study.meta.get("findings") or {}).keys()))


__all__ = ["STOPWORDS", "StudyEvidence", "ngrams", "study_evidence"]
