"""Report phrases per finding: positive, hedged and noun-phrase forms, each with its labels.

A small fixed set of variants per finding keeps the text varied but learnable. Every phrase
carries the labels a CheXpert-style reader would assign to it, so ground truth comes from the
generator, never from the labeler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from radinterp.data.phantoms.finding_base import Attrs
from radinterp.registry import Registry

Rng = np.random.Generator


@dataclass
class Statement:
    """One report sentence and the labels it asserts."""

    text: str
    labels: dict[str, int] = field(default_factory=dict)


@dataclass
class PhraseSet:
    """How one finding is written."""

    observation: str
    """Observation (or device subtype) the finding makes positive."""
    positive: Callable[[Attrs, Rng], Statement]
    """A sentence stating the finding."""
    noun: Callable[[Attrs], str]
    """Noun phrase with grade/side, e.g. 'small right pleural effusion'."""
    hedged: Callable[[Attrs, Rng], Statement] | None = None
    """A sentence hedging it (uncertain), or None when the finding is never hedged."""


PHRASES: Registry[PhraseSet] = Registry("report phrase set")

ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "severely"}
ORDINAL = {3: "3rd", 4: "4th", 5: "5th", 6: "6th", 7: "7th", 8: "8th", 9: "9th", 10: "10th"}


def pick(rng: Rng, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _obs(*names: str, value: int = 1) -> dict[str, int]:
    return {n: value for n in names}


# ---- cardiomegaly -------------------------------------------------------------------------
def _cardio_pos(a: Attrs, rng: Rng) -> Statement:
    g, adv = a["grade"], ADVERB[a["grade"]]
    t = pick(rng, [f"{cap(g)} cardiomegaly.", f"The heart is {adv} enlarged.",
                   f"The cardiac silhouette is {adv} enlarged.", f"Heart size is {adv} enlarged."])
    return Statement(t, _obs("Cardiomegaly"))


def _cardio_hedge(a: Attrs, rng: Rng) -> Statement:
    t = pick(rng, ["Possible mild cardiomegaly.", "The heart size is borderline enlarged.",
                   "Cardiomegaly cannot be excluded on this projection."])
    return Statement(t, _obs("Cardiomegaly", value=-1))


PHRASES.add("cardiomegaly", PhraseSet(
    "Cardiomegaly", _cardio_pos, lambda a: f"{a['grade']} cardiomegaly", _cardio_hedge))


# ---- pleural effusion ---------------------------------------------------------------------
def _eff_noun(a: Attrs) -> str:
    if a["side"] == "bilateral":
        return f"{a['grade']} bilateral pleural effusions"
    return f"{a['grade']} {a['side']} pleural effusion"


def _eff_pos(a: Attrs, rng: Rng) -> Statement:
    n, g, s = _eff_noun(a), a["grade"], a["side"]
    opts = [f"{cap(n)}.", f"There {'are' if s == 'bilateral' else 'is a'} {n}."]
    if s != "bilateral":
        opts.append(f"{cap(g)} {s} effusion.")
        if g == "small":
            opts.append(f"Blunting of the {s} costophrenic angle compatible with a small "
                        "pleural effusion.")
    return Statement(pick(rng, opts), _obs("Pleural Effusion"))


def _eff_hedge(a: Attrs, rng: Rng) -> Statement:
    s = "left" if a["side"] == "left" else "right"
    t = pick(rng, [f"Possible small {s} pleural effusion.",
                   f"A small {s} pleural effusion cannot be excluded.",
                   f"Blunting of the {s} costophrenic angle may reflect a small effusion."])
    return Statement(t, _obs("Pleural Effusion", value=-1))


PHRASES.add("pleural_effusion", PhraseSet("Pleural Effusion", _eff_pos, _eff_noun, _eff_hedge))


# ---- pneumothorax -------------------------------------------------------------------------
def _ptx_pos(a: Attrs, rng: Rng) -> Statement:
    g, s = a["grade"], a["side"]
    t = pick(rng, [f"{cap(g)} {s} pneumothorax.", f"There is a {g} {s} apicolateral pneumothorax.",
                   f"{cap(g)} {s} pneumothorax is present.",
                   f"A {s} pleural line is visible, consistent with a {g} pneumothorax."])
    return Statement(t, _obs("Pneumothorax"))


def _ptx_hedge(a: Attrs, rng: Rng) -> Statement:
    s = a["side"]
    t = pick(rng, [f"Possible small {s} apical pneumothorax.",
                   f"Questionable tiny {s} apical pneumothorax.",
                   f"A small {s} pneumothorax cannot be excluded."])
    return Statement(t, _obs("Pneumothorax", value=-1))


PHRASES.add("pneumothorax", PhraseSet(
    "Pneumothorax", _ptx_pos, lambda a: f"{a['grade']} {a['side']} pneumothorax", _ptx_hedge))


# ---- consolidation ------------------------------------------------------------------------
EXTENT = {"small": "focal", "moderate": "patchy", "extensive": "extensive"}


def _cons_pos(a: Attrs, rng: Rng) -> Statement:
    e, lobe = EXTENT[a["grade"]], a["lobe"]
    i = int(rng.integers(5))
    if i == 0:
        return Statement(f"{cap(e)} consolidation in the {lobe}.", _obs("Consolidation"))
    if i == 1:
        return Statement(f"{cap(lobe)} consolidation.", _obs("Consolidation"))
    if i == 2:
        return Statement(f"There is {e} airspace consolidation in the {lobe}, concerning for "
                         "pneumonia.", {"Consolidation": 1, "Pneumonia": -1})
    if i == 3:
        return Statement(f"{cap(e)} {lobe} consolidation, which may represent pneumonia.",
                         {"Consolidation": 1, "Pneumonia": -1})
    return Statement(f"{cap(e)} consolidation in the {lobe}, consistent with pneumonia.",
                     {"Consolidation": 1, "Pneumonia": 1})


def _cons_hedge(a: Attrs, rng: Rng) -> Statement:
    lobe = a["lobe"]
    if rng.random() < 0.5:
        return Statement(f"Possible early consolidation in the {lobe}.",
                         _obs("Consolidation", value=-1))
    return Statement(f"Subtle opacity in the {lobe} may represent early consolidation.",
                     {"Lung Opacity": 1, "Consolidation": -1})


PHRASES.add("consolidation", PhraseSet(
    "Consolidation", _cons_pos, lambda a: f"{a['lobe']} consolidation", _cons_hedge))


# ---- nodule / mass ------------------------------------------------------------------------
def _nod_noun(a: Attrs) -> str:
    if a["kind"] == "mass":
        return f"{a['size_mm'] / 10:.1f} cm {a['side']} {a['zone']} lung mass"
    return f"{a['size_mm']:.0f} mm {a['side']} {a['zone']} lung nodule"


def _nod_pos(a: Attrs, rng: Rng) -> Statement:
    s, z, mm = a["side"], a["zone"], a["size_mm"]
    if a["kind"] == "mass":
        cm = f"{mm / 10:.1f}"
        t = pick(rng, [f"{cm} cm mass in the {s} {z} lung.",
                       f"A {cm} cm {s} {z} lung mass, concerning for neoplasm.",
                       f"There is a {cm} cm mass in the {s} {z} lung zone."])
    else:
        t = pick(rng, [f"{mm:.0f} mm nodule in the {s} {z} lung zone.",
                       f"A {mm:.0f} mm {s} {z} lung nodule.",
                       f"There is a {mm:.0f} mm nodular opacity in the {s} {z} lung."])
    return Statement(t, _obs("Lung Lesion"))


def _nod_hedge(a: Attrs, rng: Rng) -> Statement:
    s, z, mm = a["side"], a["zone"], a["size_mm"]
    t = pick(rng, [f"Questionable {mm:.0f} mm nodule in the {s} {z} lung.",
                   f"Possible {s} {z} lung nodule; recommend CT for further evaluation."])
    return Statement(t, _obs("Lung Lesion", value=-1))


PHRASES.add("lung_nodule", PhraseSet("Lung Lesion", _nod_pos, _nod_noun, _nod_hedge))


# ---- edema --------------------------------------------------------------------------------
def _edema_pos(a: Attrs, rng: Rng) -> Statement:
    g = a["grade"]
    t = pick(rng, [f"{cap(g)} pulmonary edema.", f"{cap(g)} interstitial pulmonary edema.",
                   f"Findings are consistent with {g} pulmonary edema.",
                   f"Pulmonary vascular congestion with {g} interstitial edema."])
    return Statement(t, _obs("Edema"))


def _edema_hedge(a: Attrs, rng: Rng) -> Statement:
    t = pick(rng, ["Possible mild interstitial edema.",
                   "Perihilar opacities may reflect mild pulmonary edema."])
    labels = {"Edema": -1} if t.startswith("Possible") else {"Lung Opacity": 1, "Edema": -1}
    return Statement(t, labels)


PHRASES.add("edema", PhraseSet(
    "Edema", _edema_pos, lambda a: f"{a['grade']} pulmonary edema", _edema_hedge))


# ---- atelectasis --------------------------------------------------------------------------
def _atel_noun(a: Attrs) -> str:
    if a["side"] == "bilateral":
        return "bibasilar atelectasis"
    return f"{a['side']} basilar atelectasis"


def _atel_pos(a: Attrs, rng: Rng) -> Statement:
    s, g = a["side"], a["grade"]
    if s == "bilateral":
        t = pick(rng, ["Bibasilar atelectasis.", f"{cap(g)} bibasilar atelectasis.",
                       "There is bibasilar atelectasis."])
    elif a["kind"] == "plate-like":
        t = pick(rng, [f"Plate-like atelectasis at the {s} lung base.",
                       f"{cap(s)} basilar plate-like atelectasis."])
    else:
        t = pick(rng, [f"{cap(g)} {s} basilar atelectasis.", f"Atelectasis at the {s} base."])
    return Statement(t, _obs("Atelectasis"))


def _atel_hedge(a: Attrs, rng: Rng) -> Statement:
    s = "bibasilar" if a["side"] == "bilateral" else f"{a['side']} basilar"
    if rng.random() < 0.5:
        return Statement(f"Linear {s} opacity, likely atelectasis.",
                         {"Lung Opacity": 1, "Atelectasis": -1})
    return Statement(f"{cap(s)} opacity may reflect atelectasis or early pneumonia.",
                     {"Lung Opacity": 1, "Atelectasis": -1, "Pneumonia": -1})


PHRASES.add("atelectasis", PhraseSet("Atelectasis", _atel_pos, _atel_noun, _atel_hedge))


# ---- rib fracture -------------------------------------------------------------------------
def _frac_noun(a: Attrs) -> str:
    return f"{a['side']} {ORDINAL[a['rib_index'] + 2]} rib fracture"


def _frac_pos(a: Attrs, rng: Rng) -> Statement:
    s, nth = a["side"], ORDINAL[a["rib_index"] + 2]
    d = "displaced" if a["displaced"] else "nondisplaced"
    t = pick(rng, [f"{cap(d)} fracture of the {s} {nth} rib.",
                   f"There is a {d} {s} {nth} posterolateral rib fracture.",
                   f"Acute-appearing fracture of the {s} lateral {nth} rib."])
    return Statement(t, _obs("Fracture"))


def _frac_hedge(a: Attrs, rng: Rng) -> Statement:
    s, nth = a["side"], ORDINAL[a["rib_index"] + 2]
    t = pick(rng, [f"Possible nondisplaced fracture of the {s} {nth} rib.",
                   f"Cortical irregularity of the {s} {nth} rib may represent a fracture."])
    return Statement(t, _obs("Fracture", value=-1))


PHRASES.add("rib_fracture", PhraseSet("Fracture", _frac_pos, _frac_noun, _frac_hedge))
