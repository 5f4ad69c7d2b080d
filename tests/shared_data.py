"""Where the project's shared data lives: ``shared/`` beside the repository (how CI lays it
out), else the workplace's ``/work/shared``."""

from __future__ import annotations

from pathlib import Path


def _shared() -> Path:
    beside = Path(__file__).resolve().parents[2] / "shared"
    for root in (beside, Path("/work/shared")):
        if (root / "data" / "real-cxr").is_dir():
            return root.resolve()
    return beside


SHARED = _shared()
REAL_CXR = SHARED / "data" / "real-cxr"
"""The 256 real radiographs (labels, some lung masks); see its README for attribution."""
