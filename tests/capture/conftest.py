"""Fixtures for capture tests: a MIMIC-style JSONL folder with real PNG files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.shared_data import REAL_CXR  # noqa: F401  (re-exported to the capture tests)


def _png(path: Path, h: int, w: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (h, w), dtype=np.uint8)).save(path)
    return f"{path.parent.name}/{path.name}"  # relative to the JSONL's folder


@pytest.fixture
def mimic_dir(tmp_path) -> Path:
    """studies.jsonl-free folder with mimic.jsonl: 6 studies, one missing and one corrupt image."""
    root = tmp_path / "mimic"
    rows = []
    for i in range(6):
        row = {
            "study_id": f"m{i}",
            "frontal": _png(root / "img" / f"f{i}.png", 200 + 17 * i, 180, i),
            "indication": f"Cough for {i + 1} days.",
            "technique": "PA and lateral.",
            "comparison": None,
            "report": "No focal consolidation. Heart size normal.",
            "labels": {"No Finding": 1, "Edema": None},
            "subject_id": f"p{i}",
        }
        if i % 2 == 0:
            row["lateral"] = _png(root / "img" / f"l{i}.png", 150, 210, 10 + i)
        if i == 4:
            row["prior_frontal"] = _png(root / "img" / "prior4.png", 160, 160, 99)
            row["prior_report"] = "Mild cardiomegaly."
        rows.append(row)
    rows[1]["frontal"] = "img/does_not_exist.png"
    (root / "img" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    rows[3]["lateral"] = "img/corrupt.png"
    (root / "mimic.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root
