"""The positive-label policy: which label values state a finding.

A label of 1 (positive) or -1 (uncertain, a hedged mention) states the finding, CheXpert's
"U-ones" policy; 0 (negated) and a blank (not mentioned) do not. Every score, filter and
loss weight that asks "does this report state X?" asks :func:`is_positive`.
"""

from __future__ import annotations

from collections.abc import Mapping

POSITIVE_VALUES: tuple[int, ...] = (1, -1)
"""Label values that count as stating the finding."""


def is_positive(labels: Mapping[str, int], name: str) -> bool:
    """True when ``labels`` (``{observation: 1 | 0 | -1}``, blanks omitted) states ``name``."""
    return labels.get(name) in POSITIVE_VALUES


def positive_labels(labels: Mapping[str, int]) -> list[str]:
    """The observations ``labels`` states, in its own order."""
    return [name for name, value in labels.items() if value in POSITIVE_VALUES]
