"""Task labels of CSR's task head, derived from each study's findings (a small registry).

- ``abnormal`` (exclusive classes ``normal``, ``abnormal``): abnormal when the study has any
  finding that is not a support device (phantoms: ``Finding.device``; on other data no
  finding is a device, so any positive label but "No Finding" is abnormal). Devices are
  concepts the head must learn to discount, as in the paper where concepts and task differ.
- ``findings`` (multi-label): one class per concept, the concept labels themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from radinterp.registry import Registry


@dataclass(frozen=True)
class TaskLabels:
    """Task classes and labels of a set of studies."""

    classes: list[str]
    """Class names, the task head's output order."""
    labels: np.ndarray
    """(N, C) bool; one True per row when ``exclusive``."""
    exclusive: bool
    """Softmax over classes (one per study) rather than one sigmoid per class."""


TaskFn = Callable[[Sequence[Sequence[str]], Sequence[str]], TaskLabels]
TASKS: Registry[TaskFn] = Registry("CSR task")


def is_device(finding: str) -> bool:
    """Whether ``finding`` names a support device of the phantom generator."""
    from radinterp.data.phantoms.findings import finding_names, get_finding

    return finding in finding_names() and bool(get_finding(finding).device)


@TASKS.register("abnormal")
def abnormal_task(study_findings: Sequence[Sequence[str]], concepts: Sequence[str]) -> TaskLabels:
    """normal vs abnormal (any non-device finding, concept or not)."""
    ab = np.array([any(not is_device(f) for f in fs) for fs in study_findings], bool)
    return TaskLabels(["normal", "abnormal"], np.stack([~ab, ab], 1), True)


@TASKS.register("findings")
def findings_task(study_findings: Sequence[Sequence[str]], concepts: Sequence[str]) -> TaskLabels:
    """Multi-label: the concepts themselves."""
    col = {c: j for j, c in enumerate(concepts)}
    out = np.zeros((len(study_findings), len(concepts)), bool)
    for i, fs in enumerate(study_findings):
        for f in fs:
            if f in col:
                out[i, col[f]] = True
    return TaskLabels(list(concepts), out, False)
