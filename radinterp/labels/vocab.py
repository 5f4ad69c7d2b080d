"""Mention vocabulary: regular expressions per observation / device subtype.

Patterns run on normalised, lower-cased sentences (see :mod:`radinterp.labels.text`). A mention
nested inside a longer mention of another observation is dropped ("nodular opacity" is a
lung lesion, not an opacity). Attribute patterns ("heart size is normal") carry their own
value; plain nouns get theirs from negation / uncertainty cues.
"""

from __future__ import annotations

import re

# ---- plain mentions -----------------------------------------------------------------------
_TUBE_KINDS = (
    r"endotracheal|tracheostomy|trach|chest|nasogastric|orogastric|enteric|feeding|gastric|"
    r"dobhoff|thoracostomy|mediastinal|pleural|g|j|gj|nasoenteric"
)
_LINE_KINDS = (
    r"central|central venous|venous|arterial|picc|internal jugular|subclavian|femoral|"
    r"dialysis|hemodialysis|swan[- ]ganz|pulmonary artery|port|catheter|midline"
)

MENTIONS: dict[str, list[str]] = {
    "Lung Lesion": [
        r"nodul(?:e|es|ar (?:opacity|opacities|density|densities|lesions?|opacification))",
        r"(?<!soft tissue )mass(?:es)?(?! effect)(?!-like opacit)", r"(?:lung|pulmonary|cavitary|"
        r"spiculated) lesions?", r"tumou?rs?", r"neoplasms?", r"carcinomas?", r"malignanc(?:y|ies)",
        r"metastas[ie]s", r"metastatic disease",
    ],
    "Lung Opacity": [
        r"opacit(?:y|ies)", r"opacification", r"opacified", r"infiltrates?", r"infiltration",
        r"hazy", r"haziness", r"air ?space (?:disease|process|opacit(?:y|ies))",
        r"ground[- ]glass", r"reticul(?:ar|onodular)(?: (?:opacit(?:y|ies)|pattern|markings))?",
        r"interstitial (?:markings|opacit(?:y|ies)|pattern|abnormality|prominence|thickening|"
        r"lung disease)", r"(?<!bone )densit(?:y|ies)", r"mass-like opacit(?:y|ies)",
    ],
    "Edema": [
        r"(?<!soft tissue )(?<!subcutaneous )edema", r"congestive heart failure", r"heart failure",
        r"(?:vascular|venous|pulmonary|interstitial) congestion", r"congestion",
        r"vascular (?:engorgement|redistribution)", r"cephalization", r"kerley b? ?lines",
        r"fluid overload",
    ],
    "Consolidation": [r"consolidat(?:ion|ions|ive|ed)"],
    "Pneumonia": [
        r"(?:broncho)?pneumonias?", r"infections?", r"infectious(?: process| etiology)?",
    ],
    "Atelectasis": [r"atelecta(?:sis|ses|tic)", r"collapse(?:d)?(?! of the)", r"volume loss"],
    "Pneumothorax": [r"(?:hydro)?pneumothora(?:x|ces)"],
    "Pleural Effusion": [
        r"(?<!pericardial )effusions?", r"hydro(?:pneumo)?thorax", r"pleural fluid",
    ],
    "Pleural Other": [
        r"pleural (?:thickening|plaques?|scarring|calcifications?|based thickening)",
        r"fibrothorax", r"apical (?:pleural )?(?:cap|capping|thickening)",
        r"pleural[- ]parenchymal (?:scarring|thickening)",
    ],
    "Fracture": [r"fractur(?:e|es|ed)"],
    "Pacemaker": [
        r"pacemakers?", r"pacers?", r"pacing (?:device|leads?|wires?|generator)",
        r"defibrillators?", r"(?<![a-z])a?icd(?![a-z])",
        r"cardiac (?:resynchronization|rhythm) device",
    ],
    "Endotracheal Tube": [r"endotracheal(?: tube)?", r"intubated", r"intubation"],
    "Nasogastric Tube": [
        r"nasogastric(?: tube)?", r"orogastric(?: tube)?", r"(?:enteric|feeding|dobhoff|"
        r"nasoenteric|gastric) tube", r"dobhoff",
    ],
    "Central Venous Catheter": [
        r"central venous (?:catheter|line)s?", r"central lines?", r"picc(?: line)?",
        r"peripherally inserted central catheter",
        r"(?:internal jugular|subclavian|femoral)(?: venous| central venous| central)?"
        r"(?: catheter| line| cvc| sheath| introducer| port| approach)",
        r"port-?a-?cath", r"(?:chest|power) port", r"mediport",
        r"(?:tunnel(?:l)?ed|dialysis|hemodialysis|triple[- ]lumen) (?:catheter|line)", r"hickman",
    ],
    "Sternotomy Wires": [
        r"sternotomy(?: wires| sutures)?", r"sternal (?:wires?|sutures|cerclage(?: wires)?)",
    ],
    "Support Devices": [
        rf"(?:{_TUBE_KINDS}) tubes?", r"tubes? (?:and|or) lines?", r"lines? (?:and|or) tubes?",
        rf"(?:{_LINE_KINDS}) lines?", r"catheters?", r"(?:monitoring|ekg|ecg) leads",
        r"drains?", r"stents?", r"(?:surgical|vascular) clips", r"hardware", r"swan[- ]ganz",
        r"(?:valve|prosthetic valve) replacement", r"prosthetic valves?", r"balloon pump",
        r"sheath", r"coils?", r"pigtail",
    ],
}

INHERENT_NEGATIVE: dict[str, list[str]] = {
    "Endotracheal Tube": [r"extubat(?:ed|ion)"],
}
"""Mentions that are negative by themselves ("interval extubation")."""

EXCLUDE: list[str] = [
    r"pleural line", r"kerley b? ?lines", r"septal lines", r"skin ?folds?", r"mass effect",
]
"""Phrases masked before mention search (they contain device / lesion words)."""

# ---- attribute mentions (heart size, mediastinum) ----------------------------------------
_FILL = (
    r"(?:\s+(?:is|are|appears?|appear|remains?|was|were|seems?|looks?|has|have|been|to|be|"
    r"again|now|still|stably|mildly|moderately|severely|markedly|slightly|minimally|overall|"
    r"otherwise|size|likely|probably|possibly|may|might|could|perhaps|at|the|in|of))*"
)
_CONJ = (
    r"(?:\s+and(?:\s+the)?\s+(?:mediastinum|mediastinal contours?|hila|hilar contours|"
    r"mediastinal and hilar contours|hilar and mediastinal contours|heart size|heart|"
    r"pulmonary vasculature|cardiac silhouette))?"
)
_HEART = r"(?:heart size|heart|cardiac silhouette|cardiac size|cardiac contours?|cardiac shadow)"
_MEDI = (
    r"(?:cardiomediastinal (?:silhouette|contours?|shadow)|mediastinal (?:contours?|silhouette|"
    r"width|shadow)|mediastinum|hilar and mediastinal contours|mediastinal and hilar contours|"
    r"cardiomediastinal and hilar contours)"
)
_NORMAL = (
    r"(?:within normal limits|normal in size|not enlarged|not widened|unremarkable|normal|"
    r"top[- ]normal|upper limits? of normal|upper normal|small)"
)
_BORDER = r"(?:borderline(?: enlarged| in size| size)?)"
_BIG = r"(?:enlarged|enlargement|large|increased|prominent|widened|wide)"

ATTRIBUTES: dict[str, list[tuple[str, int]]] = {
    "Cardiomegaly": [
        (rf"{_HEART}{_CONJ}{_FILL}\s+{_BORDER}", -1),
        (rf"{_HEART}{_CONJ}{_FILL}\s+{_NORMAL}", 0),
        (rf"{_HEART}{_CONJ}{_FILL}\s+(?:enlarged|enlargement|large|increased|prominent)", 1),
        (r"cardiomegaly", 1), (r"cardiac enlargement", 1),
        (r"enlarge(?:d|ment of the) (?:heart|cardiac silhouette|cardiac contour|cardiac shadow)",
         1),
        (r"(?:normal|normal-sized|top[- ]normal) (?:heart size|heart|cardiac silhouette|"
         r"cardiac size)", 0),
        (r"(?:borderline) (?:heart size|heart|cardiac silhouette|cardiac size)", -1),
    ],
    "Enlarged Cardiomediastinum": [
        (rf"{_MEDI}{_CONJ}{_FILL}\s+{_BORDER}", -1),
        (rf"{_MEDI}{_CONJ}{_FILL}\s+{_NORMAL}", 0),
        (rf"{_MEDI}{_CONJ}{_FILL}\s+{_BIG}", 1),
        (r"(?:widened|widening of the) (?:mediastinum|mediastinal (?:contours?|silhouette))", 1),
        (r"mediastinal widening", 1),
        (r"enlarge(?:d|ment of the) cardiomediastinal (?:silhouette|contours?)", 1),
        (r"normal (?:cardiomediastinal|mediastinal) (?:silhouette|contours?)", 0),
    ],
}
"""Attribute mentions: the matched phrase fixes the value (cues may still hedge / negate a
positive one)."""


def compile_all() -> tuple[list[tuple[str, re.Pattern[str], int | None]], re.Pattern[str]]:
    """All mention patterns as (observation, compiled, fixed value or None), and EXCLUDE."""
    out: list[tuple[str, re.Pattern[str], int | None]] = []
    for obs, pats in MENTIONS.items():
        out += [(obs, re.compile(rf"\b{p}\b"), None) for p in pats]
    for obs, pats in INHERENT_NEGATIVE.items():
        out += [(obs, re.compile(rf"\b{p}\b"), 0) for p in pats]
    for obs, items in ATTRIBUTES.items():
        out += [(obs, re.compile(rf"\b{p}\b"), v) for p, v in items]
    return out, re.compile("|".join(rf"\b{p}\b" for p in EXCLUDE))
