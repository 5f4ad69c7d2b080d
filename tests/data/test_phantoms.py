"""Phantom generator: determinism, masks vs pixels, labels vs planted findings, longitudinal
consistency, loading (Study / datasets), resumability and overwrite protection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from radinterp.data import Study
from radinterp.data.phantoms import (
    DatasetExistsError,
    PhantomConfig,
    as_hf_dataset,
    finding_label,
    finding_names,
    generate_phantoms,
    get_finding,
    load_phantom_studies,
    read_records,
)
from radinterp.labels import ALL_LABELS, DEVICE_SUBTYPES, PATHOLOGIES, is_positive

N = 40


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms")
    cfg = PhantomConfig(n=N, seed=7, size=160, prior_fraction=0.5, normal_fraction=0.2)
    generate_phantoms(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def records(dataset):
    return read_records(dataset)


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int16)


def test_layout_and_formats(dataset, records):
    assert (dataset / "cfg.json").exists() and (dataset / "COMPLETE").exists()
    assert len(records) == N
    for r in records[:10]:
        im = Image.open(r["image"])
        assert im.mode == "L" and im.size == (160, 160)
        assert Image.open(r["healthy"]).size == (160, 160)
        for path in r["masks"].values():
            m = np.asarray(Image.open(path))
            assert set(np.unique(m)) <= {0, 255}


def test_deterministic_per_seed_and_independent_of_n(tmp_path):
    a = generate_phantoms(PhantomConfig(n=6, seed=3, size=112), tmp_path / "a", progress=False)
    b = generate_phantoms(PhantomConfig(n=6, seed=3, size=112), tmp_path / "b", progress=False)
    c = generate_phantoms(PhantomConfig(n=3, seed=3, size=112), tmp_path / "c", progress=False)
    d = generate_phantoms(PhantomConfig(n=3, seed=4, size=112), tmp_path / "d", progress=False)
    ra, rb, rc, rd = (read_records(x) for x in (a, b, c, d))
    paths = ("image", "healthy", "prior_image", "masks")

    def strip(recs):
        return [{k: v for k, v in r.items() if k not in paths} for r in recs]

    assert strip(ra) == strip(rb)
    assert strip(ra)[:3] == strip(rc)
    for x, y in zip(ra, rb):
        assert (_img(x["image"]) == _img(y["image"])).all()
    assert any((_img(x["image"]) != _img(y["image"])).any() for x, y in zip(rc, rd))
    assert [r["report"] for r in rc] != [r["report"] for r in rd]


def test_masks_mark_where_pixels_changed(records):
    """The difference to the healthy twin lies inside the finding masks."""
    checked = 0
    for r in records:
        if not r["masks"]:
            continue
        img, healthy = _img(r["image"]), _img(r["healthy"])
        union = np.zeros(img.shape, dtype=bool)
        for path in r["masks"].values():
            m = np.asarray(Image.open(path)) > 0
            assert m.any()
            union |= m
        diff = np.abs(img - healthy)
        inside, outside = diff[union].mean(), diff[~union].mean()
        assert inside > 2.0 and inside > 3 * outside, (r["study_id"], inside, outside)
        checked += 1
    assert checked >= 10


def test_normal_study_equals_its_healthy_twin(records):
    normals = [r for r in records if not r["findings"]]
    assert normals
    for r in normals:
        assert (_img(r["image"]) == _img(r["healthy"])).all()
        assert r["labels"].get("No Finding") == 1


def test_mask_side_matches_attribute(records):
    for r in records:
        for name, attrs in r["findings"].items():
            side = attrs.get("side")
            if side not in ("right", "left") or name not in r["masks"]:
                continue
            m = np.asarray(Image.open(r["masks"][name])) > 0
            cx = np.nonzero(m)[1].mean() / m.shape[1]
            # patient's right is the image's left
            assert (cx < 0.5) == (side == "right"), (r["study_id"], name, cx)


def test_findings_are_visible(tmp_path):
    """Effusion brightens the lung base, pneumothorax darkens its rim, cardiomegaly
    widens the heart beyond half the thorax."""
    for name, sign in (("pleural_effusion", 1), ("pneumothorax", -1)):
        cfg = PhantomConfig(n=4, seed=11, size=224, findings={name: 1.0}, normal_fraction=0,
                            cooccurrence=False, prior_fraction=0)
        for r in read_records(generate_phantoms(cfg, tmp_path / name, progress=False)):
            m = np.asarray(Image.open(r["masks"][name])) > 0
            delta = (_img(r["image"]) - _img(r["healthy"]))[m].mean()
            assert sign * delta > 4, (name, delta)
    cfg = PhantomConfig(n=4, seed=11, size=224, findings={"cardiomegaly": 1.0},
                        normal_fraction=0, cooccurrence=False, prior_fraction=0)
    for r in read_records(generate_phantoms(cfg, tmp_path / "cm", progress=False)):
        assert r["findings"]["cardiomegaly"]["ctr"] > 0.5


def test_labels_agree_with_planted_findings(records):
    explains = {"Pneumonia": {"consolidation", "atelectasis"},
                "Lung Opacity": {"consolidation", "edema", "atelectasis"}}
    for r in records:
        labels, found = r["labels"], r["findings"]
        assert set(labels) <= set(ALL_LABELS)
        assert set(labels.values()) <= {1, 0, -1}
        for name, attrs in found.items():
            f = get_finding(name)
            if f.device:
                assert labels[finding_label(name)] == 1 and labels["Support Devices"] == 1
                if name == "nasogastric_tube":
                    assert labels["NG Tube Malpositioned"] == int(attrs["malpositioned"])
            else:
                assert is_positive(labels, finding_label(name)), (r["study_id"], name, labels)
        planted_obs = {get_finding(n).observation for n in found}
        for obs in PATHOLOGIES:
            if is_positive(labels, obs):
                assert obs in planted_obs or explains.get(obs, set()) & set(found), (obs, r)
        for name, change in r["changes"].items():
            if change == "resolved" and not get_finding(name).device:
                assert labels[get_finding(name).observation] == 0
        assert ("No Finding" in labels) == (not any(is_positive(labels, o) for o in PATHOLOGIES))


def test_finding_label_is_the_subtype_or_observation():
    labels = {name: finding_label(name) for name in finding_names()}
    assert labels["lung_nodule"] == "Lung Lesion" and labels["rib_fracture"] == "Fracture"
    assert labels["pacemaker"] == "Pacemaker" and labels["nasogastric_tube"] == "Nasogastric Tube"
    assert {labels[n] for n in finding_names() if get_finding(n).device} <= set(DEVICE_SUBTYPES)
    assert set(labels.values()) <= set(ALL_LABELS) and len(set(labels.values())) == len(labels)
    with pytest.raises(KeyError, match="lung_nodule"):
        finding_label("nodule")


def test_longitudinal_studies(records):
    longi = [r for r in records if r["prior_image"]]
    assert len(longi) >= 8
    for r in longi:
        assert r["prior_report"] and r["comparison"] not in ("None.", "No prior studies available.")
        prior = r["prior_findings"]
        for name, change in r["changes"].items():
            if change == "new":
                assert name in r["findings"] and name not in prior
            elif change == "resolved":
                assert name not in r["findings"] and name in prior
            else:
                assert name in r["findings"] and name in prior
            if change == "increased" and "severity" in prior[name]:
                assert prior[name]["severity"] < r["findings"][name]["severity"]
    assert {c for r in longi for c in r["changes"].values()} >= {"new", "unchanged"}


def test_load_as_studies_and_hf_dataset(dataset):
    studies = load_phantom_studies(dataset)
    assert len(studies) == N and all(isinstance(s, Study) for s in studies)
    s = next(s for s in studies if s.prior_frontal)
    assert s.prior_report and s.indication and s.technique and s.comparison and s.report
    assert s.meta["view"] in ("PA", "AP") and s.meta["healthy"].endswith("_healthy.png")
    assert all(set(st.masks) == set(st.meta["findings"]) for st in studies)
    ds = as_hf_dataset(dataset)
    assert len(ds) == N
    row = ds[0]
    assert row["image"].size == (160, 160)
    assert row["study_id"] == studies[0].study_id
    for k in ALL_LABELS:
        assert row[k] == studies[0].labels.get(k)


def test_normal_share_and_cooccurrence_rates():
    from radinterp.data.phantoms.spec import sample_study

    cfg = PhantomConfig(n=3000, seed=0, normal_fraction=0.3)
    sets = [set(sample_study(cfg, i).current.findings) for i in range(cfg.n)]
    assert abs(sum(not s for s in sets) / cfg.n - 0.3) < 0.03

    def rate(then, given, present):
        pool = [s for s in sets if s and (given in s) == present]
        return sum(then in s for s in pool) / len(pool)

    assert rate("edema", "cardiomegaly", True) > 1.8 * rate("edema", "cardiomegaly", False)
    assert rate("nasogastric_tube", "endotracheal_tube", True) > 2.5 * rate(
        "nasogastric_tube", "endotracheal_tube", False)
    off = PhantomConfig(n=3000, seed=0, normal_fraction=0.3, cooccurrence=False)
    sets = [set(sample_study(off, i).current.findings) for i in range(off.n)]
    assert rate("edema", "cardiomegaly", True) < 1.5 * rate("edema", "cardiomegaly", False)


def test_bad_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="valid names"):
        PhantomConfig(findings={"cardiomegaly": 0.2, "unicorn": 0.1})
    with pytest.raises(KeyError, match="valid names: .*pneumothorax"):
        PhantomConfig(findings="pneumothorax,dragon")
    with pytest.raises(ValueError, match="--size"):
        PhantomConfig(size=16)
    with pytest.raises(ValueError, match="impossible lesion size"):
        PhantomConfig(lesion_size_mm=(40, 10))
    with pytest.raises(ValueError, match="impossible lesion size"):
        PhantomConfig(lesion_size_mm=(10, 400))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        PhantomConfig(findings={"edema": 1.5})
    assert set(finding_names()) >= {"cardiomegaly", "pleural_effusion", "pneumothorax",
                                    "consolidation", "lung_nodule", "edema", "atelectasis",
                                    "rib_fracture", "pacemaker", "endotracheal_tube",
                                    "nasogastric_tube", "central_venous_catheter",
                                    "sternotomy_wires"}


def test_rerun_noop_overwrite_protection_and_resume(tmp_path):
    out = tmp_path / "ds"
    cfg = PhantomConfig(n=8, seed=1, size=96)
    generate_phantoms(cfg, out, progress=False)
    first = (out / "studies.jsonl").read_text()
    stamp = (out / "studies.jsonl").stat().st_mtime_ns
    generate_phantoms(PhantomConfig(n=8, seed=1, size=96), out, progress=False)  # no-op
    assert (out / "studies.jsonl").stat().st_mtime_ns == stamp
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        generate_phantoms(PhantomConfig(n=8, seed=2, size=96), out, progress=False)
    assert (out / "studies.jsonl").read_text() == first  # nothing touched
    # interrupted run: marker gone, torn last line -> resume to the same result
    (out / "COMPLETE").unlink()
    lines = first.splitlines(keepends=True)
    (out / "studies.jsonl").write_text("".join(lines[:3]) + lines[3][:25])
    generate_phantoms(cfg, out, progress=False)
    assert (out / "studies.jsonl").read_text() == first and (out / "COMPLETE").exists()
    # overwrite replaces
    generate_phantoms(PhantomConfig(n=3, seed=2, size=96), out, overwrite=True, progress=False)
    assert len(read_records(out)) == 3
    assert json.loads((out / "cfg.json").read_text())["seed"] == 2
    # a non-phantom folder is refused too
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DatasetExistsError, match="not empty"):
        generate_phantoms(cfg, other, progress=False)
    assert (other / "notes.txt").read_text() == "mine"


def test_specific_indication_hints_only_come_with_their_finding():
    from radinterp.data.phantoms.reports import INDICATION_HINTS, build_report, specific_hints
    from radinterp.data.phantoms.spec import sample_study

    hints = specific_hints()
    assert "rib_fracture" in hints and "pleural_effusion" not in hints  # shared with cardiomegaly
    cfg = PhantomConfig(n=1500, seed=4)
    seen = dict.fromkeys(INDICATION_HINTS, 0)
    for i in range(cfg.n):
        spec = sample_study(cfg, i)
        rep = build_report(spec.patient, spec.current.findings, spec.current.view,
                           np.random.default_rng([cfg.seed, i, 1]), cfg.uncertainty_rate)
        for f, h in hints.items():
            if h in rep.indication:
                assert f in spec.current.findings, (rep.indication, spec.current.findings)
                seen[f] += 1
    assert all(seen[f] > 0 for f in hints)  # every hint does occur
