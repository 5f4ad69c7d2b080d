"""Data sources: image folder (real CXRs), MIMIC-style JSONL, phantom studies.jsonl."""

from __future__ import annotations

import pytest

from radinterp.data.sources import (
    SOURCES,
    SourceError,
    detect_source,
    image_problem,
    open_studies,
)
from tests.capture.conftest import REAL_CXR


def test_real_cxr_image_folder():
    studies = list(open_studies(REAL_CXR))
    assert detect_source(REAL_CXR) == "image_folder"
    assert len(studies) == 256 and len({s.study_id for s in studies}) == 256
    assert all(image_problem(s) is None for s in studies)
    first = studies[0]
    assert first.study_id == "00000100_000"
    assert first.labels == {"Atelectasis": 1, "Effusion": 1, "Infiltration": 1}
    assert first.meta["view"] == "PA" and first.meta["extra"] == {"follow_up": "0"}
    assert sum(1 for s in studies if "lung" in s.masks) == 83
    assert sum(1 for s in studies if s.report) == 8


def test_mimic_jsonl(mimic_dir):
    path = mimic_dir / "mimic.jsonl"
    assert detect_source(path) == "mimic_jsonl"
    studies = {s.study_id: s for s in open_studies(path)}
    s4 = studies["m4"]
    assert s4.prior_frontal == str(mimic_dir / "img" / "prior4.png")
    assert s4.prior_report == "Mild cardiomegaly." and s4.comparison is None
    assert s4.labels == {"No Finding": 1} and s4.meta == {"subject_id": "p4"}
    assert image_problem(s4) is None
    assert "missing frontal image file" in image_problem(studies["m1"])
    assert str(mimic_dir / "img" / "does_not_exist.png") in image_problem(studies["m1"])
    assert "corrupt lateral image file" in image_problem(studies["m3"])


def test_phantom_folder(tmp_path):
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms

    root = generate_phantoms(PhantomConfig(n=5, seed=0, size=64), tmp_path / "ph", progress=False)
    assert detect_source(root) == "phantoms"
    studies = list(open_studies(root))
    assert len(studies) == 5 and all(image_problem(s) is None for s in studies)
    assert all(s.report and s.meta["source"] == "phantom" for s in studies)


def test_bad_sources(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        detect_source(tmp_path / "nope")
    with pytest.raises(SourceError, match="cannot tell"):
        detect_source(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"study_id": "a", "frontal": "x.png"}\n{not json\n')
    with pytest.raises(SourceError, match="bad.jsonl:2"):
        list(open_studies(bad))
    bad.write_text('{"frontal": "x.png"}\n')
    with pytest.raises(SourceError, match="no study_id"):
        list(open_studies(bad))
    bad.write_text('{"study_id": "a", "labels": {"Edema": 2}}\n')
    with pytest.raises(SourceError, match="use 1, 0, -1"):
        list(open_studies(bad))
    with pytest.raises(KeyError, match="valid names: image_folder, mimic_jsonl, phantoms"):
        open_studies(bad, kind="dicom")
    assert set(SOURCES) == {"image_folder", "mimic_jsonl", "phantoms"}
