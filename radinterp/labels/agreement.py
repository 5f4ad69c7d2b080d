"""Agreement between predicted and reference labels (per observation and macro).

Each observation is scored only on the studies whose *reference* names it (1, 0 or -1).
Per observation: precision / recall / F1 of the positive class (reference 1 vs prediction 1;
a blank prediction counts as not positive), plus F1 of the negative (0) and uncertain (-1)
classes, exact-value accuracy (blank prediction = wrong) and counts. ``macro_f1`` averages
the positive-class F1 over observations with at least one positive reference or prediction;
``macro_f1_3class`` averages, per observation, the mean F1 over the classes present in the
reference or prediction, so it also punishes negation and uncertainty errors.

Counts go through :func:`radinterp.metrics.precision_recall_f1`: an F1 with nothing to score
(no reference and no prediction of that class) is ``None``. Precision and recall read 0.0
where undefined (no prediction / no reference of the positive class), as ``agreement.json``
has always written them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from radinterp.metrics import mean_defined, precision_recall_f1

CLASSES = (1, 0, -1)


def agreement(
    pred: Sequence[dict[str, int]],
    ref: Sequence[dict[str, int]],
    observations: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score ``pred`` against ``ref`` (aligned lists of ``{observation: 1|0|-1}``)."""
    if len(pred) != len(ref):
        raise ValueError(f"pred has {len(pred)} studies but ref has {len(ref)}; align them by id")
    names = list(observations) if observations is not None else sorted({k for r in ref for k in r})
    per: dict[str, dict[str, Any]] = {}
    for obs in names:
        pairs = [(p.get(obs), r[obs]) for p, r in zip(pred, ref) if obs in r]
        if not pairs:
            continue
        row: dict[str, Any] = {"n": len(pairs)}
        class_f1 = []
        for cls in CLASSES:
            tp = sum(1 for p, r in pairs if p == cls and r == cls)
            fp = sum(1 for p, r in pairs if p == cls and r != cls)
            fn = sum(1 for p, r in pairs if p != cls and r == cls)
            prec, rec, f1 = precision_recall_f1(tp, fp, fn)
            key = {1: "", 0: "negative_", -1: "uncertain_"}[cls]
            if cls == 1:
                row.update(precision=prec or 0.0, recall=rec or 0.0, f1=f1, n_positive=tp + fn)
            else:
                row[f"{key}f1"] = f1
            class_f1.append(f1)
        row["f1_3class"] = mean_defined(class_f1)
        row["accuracy"] = sum(1 for p, r in pairs if p == r) / len(pairs)
        per[obs] = row
    return {
        "macro_f1": mean_defined(r["f1"] for r in per.values()),
        "macro_f1_3class": mean_defined(r["f1_3class"] for r in per.values()),
        "n_studies": len(ref),
        "observations": per,
    }
