"""Procedural chest-radiograph phantoms with planted findings, masks, reports and labels.

Public API::

    cfg = PhantomConfig(n=1000, seed=0, size=224)
    generate_phantoms(cfg, "data/phantoms")      # -> Path (resumable, overwrite-protected)
    studies = load_phantom_studies("data/phantoms")   # -> list[radinterp.data.Study]
    ds = as_hf_dataset("data/phantoms")               # -> datasets.Dataset
"""

from radinterp.data.phantoms.config import PhantomConfig, parse_findings
from radinterp.data.phantoms.findings import FINDINGS, finding_names, get_finding
from radinterp.data.phantoms.hf import as_hf_dataset
from radinterp.data.phantoms.labels import (
    ALL_LABELS,
    CHEXPERT_OBSERVATIONS,
    DEVICE_SUBTYPES,
)
from radinterp.data.phantoms.writer import (
    DatasetExistsError,
    generate_phantoms,
    load_phantom_studies,
    read_records,
)

__all__ = [
    "ALL_LABELS",
    "CHEXPERT_OBSERVATIONS",
    "DEVICE_SUBTYPES",
    "FINDINGS",
    "DatasetExistsError",
    "PhantomConfig",
    "as_hf_dataset",
    "finding_names",
    "generate_phantoms",
    "get_finding",
    "load_phantom_studies",
    "parse_findings",
    "read_records",
]
