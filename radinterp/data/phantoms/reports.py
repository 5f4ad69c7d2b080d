"""MIMIC-CXR-style reports for phantom studies: findings, impression, indication, technique,
comparison, and the labels the findings text asserts."""

from __future__ import annotations

from dataclasses import dataclass, field

from radinterp.data.phantoms import support_device_phrases  # noqa: F401  (registers device phrases)
from radinterp.data.phantoms.anatomy import Patient
from radinterp.data.phantoms.finding_base import Attrs
from radinterp.data.phantoms.findings import get_finding
from radinterp.data.phantoms.phrases import PHRASES, Rng, Statement, cap, pick
from radinterp.labels.observations import finalize_labels, merge_labels

SECTION = {
    "endotracheal_tube": 0, "nasogastric_tube": 0, "central_venous_catheter": 0,
    "pacemaker": 0, "sternotomy_wires": 0,
    "consolidation": 1, "lung_nodule": 1, "edema": 1, "atelectasis": 1,
    "pleural_effusion": 2, "pneumothorax": 2, "cardiomegaly": 3, "rib_fracture": 4,
}  # fmt: skip
"""Report order: devices, lungs, pleura, heart, bones."""

NEGATIVES: dict[tuple[str, ...], list[str]] = {
    ("Consolidation", "Pleural Effusion", "Pneumothorax"): [
        "No focal consolidation, pleural effusion, or pneumothorax.",
        "There is no focal consolidation, pleural effusion or pneumothorax."],
    ("Pleural Effusion", "Pneumothorax"): [
        "No pleural effusion or pneumothorax.", "There is no pleural effusion or pneumothorax.",
        "No effusion or pneumothorax."],
    ("Cardiomegaly", "Enlarged Cardiomediastinum"): [
        "Heart size and mediastinal contours are normal.",
        "The heart and mediastinum are within normal limits."],
    ("Consolidation",): ["No focal consolidation.", "No focal airspace consolidation.",
                         "There is no consolidation."],
    ("Pneumothorax",): ["No pneumothorax.", "There is no pneumothorax.",
                        "No evidence of pneumothorax."],
    ("Pleural Effusion",): ["No pleural effusion.", "No pleural effusions are seen.",
                            "There is no pleural effusion."],
    ("Edema",): ["No pulmonary edema.", "There is no pulmonary vascular congestion.",
                 "No evidence of pulmonary edema."],
    ("Cardiomegaly",): ["Heart size is normal.", "The heart is normal in size.",
                        "Normal heart size.", "The heart is not enlarged."],
    ("Enlarged Cardiomediastinum",): [
        "The cardiomediastinal silhouette is within normal limits.",
        "Normal cardiomediastinal silhouette.", "Mediastinal and hilar contours are unremarkable.",
        "The cardiomediastinal silhouette is unremarkable."],
    ("Lung Lesion",): ["No suspicious pulmonary nodules.",
                       "No pulmonary nodules or masses are identified."],
    ("Fracture",): ["No displaced rib fractures.", "No acute fracture is seen."],
    ("Pneumonia",): ["No findings to suggest pneumonia.", "No evidence of pneumonia."],
}  # fmt: skip
_NEG_SECTION = {"Consolidation": 1, "Edema": 1, "Lung Lesion": 1, "Pneumonia": 1,
                "Pleural Effusion": 2, "Pneumothorax": 2, "Cardiomegaly": 3,
                "Enlarged Cardiomediastinum": 3, "Fracture": 4}
_ECM_WITH_BIG_HEART = ["Mediastinal contours are unremarkable.", "The mediastinum is not widened."]
_FILLERS = {1: ["The lungs are clear.", "Lungs are well expanded and clear."],
            4: ["No acute osseous abnormality.", "Osseous structures are unremarkable.",
                "Degenerative changes of the thoracic spine."]}
_LUNG_FINDINGS = {"consolidation", "lung_nodule", "edema", "atelectasis"}


@dataclass
class Report:
    """Report sections of one study and the labels of its findings text."""

    findings: str
    impression: str
    labels: dict[str, int]
    indication: str
    technique: str
    comparison: str
    statements: list[Statement] = field(default_factory=list)


def _plain(name: str, a: Attrs) -> str:
    noun = PHRASES.get(name).noun(a)
    return noun.replace(f"{a['grade']} ", "", 1) if "grade" in a else noun


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou8" else "a"


def _change_statements(name: str, a: Attrs, change: str, rng: Rng) -> list[Statement]:
    ps = PHRASES.get(name)
    f = get_finding(name)
    obs = ps.observation
    pos = {obs: 1}
    noun, plain = ps.noun(a), _plain(name, a)
    plural = "effusions" in noun
    if f.device:
        if change == "new":
            intro = Statement(f"Interval placement of {_article(noun)} {noun}.",
                              {"Support Devices": 1, obs: 1})
            return [intro, ps.positive(a, rng)]
        if change == "resolved":
            t = pick(rng, [f"Interval removal of the {noun}.", f"The {noun} has been removed."])
            return [Statement(t, {"Support Devices": 0, obs: 0})]
        return [ps.positive(a, rng)]
    if change == "new":
        opts = [f"New {noun}."] + ([] if plural else [
            f"Interval development of {_article(noun)} {noun}.", f"There is a new {noun}."])
        return [Statement(pick(rng, opts), pos)]
    if change == "unchanged":
        opts = [f"Unchanged {noun}.", f"Stable {noun}."]
        opts += [] if plural else [f"{cap(noun)} is unchanged."]
        return [Statement(pick(rng, opts), pos)]
    if change == "resolved":
        pn = _plain(name, a)
        t = pick(rng, [f"Interval resolution of the previously seen {pn}.",
                       f"The previously noted {pn} has resolved."])
        return [Statement(t, {obs: 0})]
    word = "increase" if change == "increased" else "decrease"
    if name == "lung_nodule":
        t = (f"The {a['side']} {a['zone']} lung {a['kind']} has {change} in size, "
             f"now {a['size_mm']:.0f} mm.")
        return [Statement(t, pos)]
    grade = a["grade"]
    opts = [f"Interval {word} in the {plain}, now {grade}."]
    opts.append(f"{'Worsening' if change == 'increased' else 'Improving'} {plain}, now {grade}.")
    return [Statement(pick(rng, opts), pos)]


def _impression(
    findings: dict[str, Attrs], hedged: set[str], changes: dict[str, str], rng: Rng
) -> str:
    items: list[str] = []
    devices_ok = False
    for name, a in findings.items():
        ps = PHRASES.get(name)
        if get_finding(name).device:
            if a.get("malpositioned"):
                items.append(f"Malpositioned nasogastric tube in the {a['position']}; "
                             "recommend repositioning.")
            else:
                devices_ok = True
            continue
        prefix = {"new": "New ", "increased": "Increased ", "decreased": "Decreased "}.get(
            changes.get(name, ""), "")
        noun = ps.noun(a)
        items.append(f"Possible {noun}." if name in hedged else f"{prefix}{noun}.")
    if devices_ok:
        items.append("Support devices in appropriate position.")
    if not items:
        return pick(rng, ["No acute cardiopulmonary process.",
                          "No acute intrathoracic abnormality.", "Normal chest radiograph."])
    items = [cap(i) for i in items]
    if len(items) == 1:
        return items[0]
    return " ".join(f"{i + 1}. {t}" for i, t in enumerate(items))


def _negatives(labelled: set[str], present: set[str], rng: Rng) -> dict[int, list[Statement]]:
    out: dict[int, list[Statement]] = {}
    covered = set(labelled)
    for obs_group, texts in NEGATIVES.items():
        if covered & set(obs_group) or rng.random() > (0.55 if len(obs_group) == 1 else 0.35):
            continue
        if obs_group == ("Enlarged Cardiomediastinum",) and "cardiomegaly" in present:
            texts = _ECM_WITH_BIG_HEART
        out.setdefault(_NEG_SECTION[obs_group[0]], []).append(
            Statement(pick(rng, texts), {o: 0 for o in obs_group}))
        covered |= set(obs_group)
    return out


INDICATION_HINTS = {
    "endotracheal_tube": "intubation, evaluate ET tube position",
    "nasogastric_tube": "NG tube placement", "central_venous_catheter": "line placement",
    "pneumothorax": "chest pain after trauma", "rib_fracture": "fall, rib pain",
    "consolidation": "fever and cough, evaluate for pneumonia",
    "edema": "dyspnea, history of CHF", "pleural_effusion": "shortness of breath",
    "cardiomegaly": "shortness of breath", "lung_nodule": "chronic cough",
}
"""Reason for the exam that a study's indication gives, with probability 0.7, for one of its
findings (picked uniformly among its findings listed here); otherwise a generic reason."""
GENERIC_INDICATIONS = ["chest pain", "cough", "shortness of breath", "preoperative evaluation", "fever"]


def specific_hints() -> dict[str, str]:
    """The hints that name exactly one finding and no generic reason contains: seeing one in
    an indication means the finding is planted (precision 1), whatever the image shows."""
    texts = list(INDICATION_HINTS.values())
    return {f: h for f, h in INDICATION_HINTS.items()
            if texts.count(h) == 1 and not any(h in g for g in GENERIC_INDICATIONS)}


def _context(patient: Patient, findings: dict[str, Attrs], view: str, has_prior: bool, rng: Rng):
    who = pick(rng, [f"{patient.age}-year-old {'man' if patient.sex == 'M' else 'woman'} with",
                     f"___{patient.sex} with", "Patient with", ""])
    hints = [INDICATION_HINTS[n] for n in findings if n in INDICATION_HINTS]
    reason = pick(rng, hints) if hints and rng.random() < 0.7 else pick(rng, GENERIC_INDICATIONS)
    indication = cap(f"{who} {reason}".strip()) + "."
    pa = ["PA view of the chest.", "Frontal view of the chest.", "PA chest radiograph."]
    ap = ["Portable AP view of the chest.", "Single portable AP chest radiograph.",
          "AP semi-upright view of the chest."]
    technique = pick(rng, pa if view == "PA" else ap)
    if has_prior:
        comparison = pick(rng, ["Chest radiograph from ___.", "Prior study of ___.", "___."])
    else:
        comparison = pick(rng, ["None.", "No prior studies available."])
    return indication, technique, comparison


def build_report(
    patient: Patient,
    findings: dict[str, Attrs],
    view: str,
    rng: Rng,
    uncertainty_rate: float = 0.15,
    prior: dict[str, Attrs] | None = None,
    changes: dict[str, str] | None = None,
) -> Report:
    """Report of a study with ``findings``; ``prior``/``changes`` add comparison statements."""
    changes = changes or {}
    sections: dict[int, list[Statement]] = {}
    hedged: set[str] = set()
    for name, a in findings.items():
        ps = PHRASES.get(name)
        change = changes.get(name) if prior is not None else None
        if change is None or change == "new" and not get_finding(name).device:
            if ps.hedged is not None and rng.random() < uncertainty_rate:
                stmts = [ps.hedged(a, rng)]
                hedged.add(name)
            elif change == "new":
                stmts = _change_statements(name, a, change, rng)
            else:
                stmts = [ps.positive(a, rng)]
        else:
            stmts = _change_statements(name, a, change, rng)
        sections.setdefault(SECTION[name], []).extend(stmts)
    for name, change in changes.items():
        if change == "resolved" and prior is not None and name in prior:
            st = _change_statements(name, prior[name], "resolved", rng)
            sections.setdefault(SECTION[name], []).extend(st)
    labelled = {o for s in sum(sections.values(), []) for o in s.labels}
    for sec, stmts in _negatives(labelled, set(findings), rng).items():
        sections.setdefault(sec, []).extend(stmts)
    for sec, fillers in _FILLERS.items():
        if sec == 1 and _LUNG_FINDINGS & set(findings):
            continue
        if rng.random() < 0.4:
            sections.setdefault(sec, []).append(Statement(pick(rng, fillers)))
    if prior is not None and not changes:
        sections.setdefault(5, []).append(Statement(pick(
            rng, ["No significant interval change.", "No interval change from the prior study."])))
    ordered = [s for k in sorted(sections) for s in sections[k]]
    labels = finalize_labels(merge_labels(s.labels for s in ordered))
    indication, technique, comparison = _context(patient, findings, view, prior is not None, rng)
    return Report(
        findings=" ".join(s.text for s in ordered),
        impression=_impression(findings, hedged, changes, rng),
        labels=labels,
        indication=indication,
        technique=technique,
        comparison=comparison,
        statements=ordered,
    )
