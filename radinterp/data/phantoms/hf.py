"""A phantom folder as a Hugging Face ``datasets.Dataset`` (images decoded lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from radinterp.data.phantoms.writer import read_records
from radinterp.labels.observations import ALL_LABELS


def as_hf_dataset(dir: str | Path) -> Any:
    """Columns: study_id, image / healthy / prior_image (``datasets.Image``), view, report,
    impression, prior_report, indication, technique, comparison, one int column per label
    (1 / 0 / -1, None when blank), findings / changes / masks as JSON strings."""
    import datasets  # heavy; imported lazily

    recs = read_records(dir)
    cols: dict[str, list[Any]] = {k: [] for k in (
        "study_id", "image", "healthy", "prior_image", "view", "report", "impression",
        "prior_report", "indication", "technique", "comparison", "findings", "changes", "masks",
    )}
    labels: dict[str, list[Any]] = {k: [] for k in ALL_LABELS}
    for r in recs:
        for k in cols:
            v = r.get(k)
            as_json = k in ("findings", "changes", "masks")
            cols[k].append(json.dumps(v, sort_keys=True) if as_json else v)
        for k in ALL_LABELS:
            labels[k].append(r["labels"].get(k))
    feats = datasets.Features(
        {
            **{k: datasets.Value("string") for k in cols},
            **{k: datasets.Value("int8") for k in ALL_LABELS},
            "image": datasets.Image(),
            "healthy": datasets.Image(),
            "prior_image": datasets.Image(),
        }
    )
    return datasets.Dataset.from_dict({**cols, **labels}, features=feats)
