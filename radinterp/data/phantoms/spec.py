"""One phantom study: sampled specification (patient, view, findings, prior) and its render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from radinterp.data.phantoms.anatomy import Patient, render_anatomy, sample_patient
from radinterp.data.phantoms.canvas import Canvas, Pose
from radinterp.data.phantoms.config import PhantomConfig
from radinterp.data.phantoms.finding_base import Attrs
from radinterp.data.phantoms.findings import get_finding, sample_finding_set
from radinterp.data.phantoms.render import Exposure, compose, sample_exposure, sample_pose

DRAW_ORDER = (
    "cardiomegaly", "edema", "consolidation", "atelectasis", "lung_nodule", "pleural_effusion",
    "pneumothorax", "rib_fracture", "sternotomy_wires", "pacemaker", "central_venous_catheter",
    "endotracheal_tube", "nasogastric_tube",
)  # fmt: skip
_AP_DEVICES = {"endotracheal_tube", "central_venous_catheter", "nasogastric_tube"}


@dataclass
class ImageSpec:
    """Everything needed to render one image of a phantom patient."""

    view: str
    pose: Pose
    exposure: Exposure
    findings: dict[str, Attrs]
    """Finding name -> attributes, in draw order."""


@dataclass
class StudySpec:
    """A current image, optionally a prior one, and how findings changed between them."""

    study_id: str
    patient: Patient
    current: ImageSpec
    prior: ImageSpec | None = None
    changes: dict[str, str] = field(default_factory=dict)
    """Finding -> new / resolved / increased / decreased / unchanged (only with a prior)."""


def _ordered(findings: dict[str, Attrs]) -> dict[str, Attrs]:
    return {k: findings[k] for k in DRAW_ORDER if k in findings}


def _image_spec(
    rng: np.random.Generator, cfg: PhantomConfig, findings: dict[str, Attrs]
) -> ImageSpec:
    ap_rate = 0.85 if _AP_DEVICES & set(findings) else cfg.ap_fraction
    view = "AP" if rng.random() < ap_rate else "PA"
    return ImageSpec(view, sample_pose(rng, view), sample_exposure(rng, view), _ordered(findings))


def _prior_findings(
    rng: np.random.Generator, cfg: PhantomConfig, patient: Patient, current: dict[str, Attrs]
) -> tuple[dict[str, Attrs], dict[str, str]]:
    prior: dict[str, Attrs] = {}
    changes: dict[str, str] = {}
    for name, attrs in current.items():
        f = get_finding(name)
        graded = bool(f.severities) or name == "lung_nodule"
        options = ["new", "unchanged"]
        sev = attrs.get("severity", 1)
        if graded and sev > 0:
            options.append("increased")
        if graded and sev < 2:
            options.append("decreased")
        change = str(rng.choice(options))
        changes[name] = change
        if change == "unchanged":
            prior[name] = dict(attrs)
        elif change == "increased":
            prior[name] = f.regrade(attrs, sev - 1 if f.severities else 0)
        elif change == "decreased":
            prior[name] = f.regrade(attrs, sev + 1 if f.severities else 2)
    absent = [n for n in cfg.findings if n not in current and n != "rib_fracture"]
    if absent and rng.random() < 0.35:
        name = str(rng.choice(absent))
        prior[name] = get_finding(name).sample(rng, patient, cfg)
        changes[name] = "resolved"
    return prior, changes


def sample_study(cfg: PhantomConfig, index: int) -> StudySpec:
    """Study ``index`` of the dataset; depends only on ``(cfg, index)``."""
    rng = np.random.default_rng([cfg.seed, index])
    patient = sample_patient(rng)
    names = sample_finding_set(rng, cfg.findings, cfg.normal_fraction, cfg.cooccurrence)
    findings = {n: get_finding(n).sample(rng, patient, cfg) for n in names}
    spec = StudySpec(f"ph{cfg.seed:04d}-{index:06d}", patient, _image_spec(rng, cfg, findings))
    if rng.random() < cfg.prior_fraction:
        prior, spec.changes = _prior_findings(rng, cfg, patient, spec.current.findings)
        spec.prior = _image_spec(rng, cfg, prior)
    return spec


@dataclass
class Rendered:
    """Pixels of one image spec."""

    image: np.ndarray
    """(S, S) uint8 film with findings."""
    healthy: np.ndarray | None
    """(S, S) uint8 same patient, pose and exposure, no findings."""
    masks: dict[str, np.ndarray]
    """Finding -> (S, S) bool."""


def render_image(
    patient: Patient, im: ImageSpec, size: int, healthy: bool = True, masks: bool = True
) -> Rendered:
    """Render ``im`` of ``patient`` (and, if asked, its healthy twin)."""
    canvas = Canvas(size, im.pose)
    overrides: dict[str, Any] = {}
    for name, attrs in im.findings.items():
        overrides.update(get_finding(name).anatomy(attrs, patient))
    base = render_anatomy(canvas, patient, im.view)
    current = patient.with_overrides(**overrides) if overrides else patient
    layers = render_anatomy(canvas, current, im.view) if overrides else base.copy()
    out_masks = {}
    for name, attrs in im.findings.items():
        m = get_finding(name).draw(layers, canvas, current, attrs)
        if masks:
            out_masks[name] = m
    image = compose(layers, im.exposure)
    twin = compose(base, im.exposure) if healthy else None
    return Rendered(image, twin, out_masks)
