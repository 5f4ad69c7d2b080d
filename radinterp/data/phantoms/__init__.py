"""Procedural chest-radiograph phantoms with planted findings, masks, reports and labels.

Public API::

    cfg = PhantomConfig(n=1000, seed=0, size=224)
    generate_phantoms(cfg, "data/phantoms")      # -> Path (resumable, overwrite-protected)
    studies = load_phantom_studies("data/phantoms")   # -> list[radinterp.data.Study]
    ds = as_hf_dataset("data/phantoms")               # -> datasets.Dataset
    finding_label("lung_nodule")                      # -> "Lung Lesion", the label it plants

Label names and the report labeler: :mod:`radinterp.labels`.
"""

from radinterp.data.phantoms.config import PhantomConfig, parse_findings
from radinterp.data.phantoms.finding_base import FINDINGS
from radinterp.data.phantoms.findings import finding_label, finding_names, get_finding
from radinterp.data.phantoms.hf import as_hf_dataset
from radinterp.data.phantoms.writer import (
    DatasetExistsError,
    generate_phantoms,
    load_phantom_studies,
    read_records,
)

__all__ = [
    "FINDINGS",
    "DatasetExistsError",
    "PhantomConfig",
    "as_hf_dataset",
    "finding_label",
    "finding_names",
    "generate_phantoms",
    "get_finding",
    "load_phantom_studies",
    "parse_findings",
    "read_records",
]
