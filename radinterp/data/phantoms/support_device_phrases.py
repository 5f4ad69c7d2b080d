"""Report phrases for support devices (position statements carry the subtype labels)."""

from __future__ import annotations

from radinterp.data.phantoms.finding_base import Attrs
from radinterp.data.phantoms.phrases import PHRASES, PhraseSet, Rng, Statement, cap, pick

SD = "Support Devices"


def _labels(subtype: str, **extra: int) -> dict[str, int]:
    return {SD: 1, subtype: 1, **extra}


def _ett(a: Attrs, rng: Rng) -> Statement:
    d = f"{a['tip_cm_above_carina']:.1f}".rstrip("0").rstrip(".")
    t = pick(rng, [f"Endotracheal tube tip terminates {d} cm above the carina.",
                   f"An endotracheal tube is in place with its tip {d} cm above the carina.",
                   f"ET tube in standard position, approximately {d} cm above the carina.",
                   f"ETT tip is {d} cm above the carina."])
    return Statement(t, _labels("Endotracheal Tube"))


_NG = {
    "stomach": [
        "Nasogastric tube courses below the diaphragm with the tip in the stomach.",
        "An enteric tube terminates in the stomach.",
        "NG tube tip is in the stomach.",
        "The nasogastric tube is appropriately positioned, terminating in the stomach.",
    ],
    "distal esophagus": [
        "Nasogastric tube tip is in the distal esophagus and should be advanced.",
        "The NG tube terminates above the gastroesophageal junction; recommend advancing.",
        "Enteric tube tip projects over the distal esophagus, above the diaphragm.",
    ],
    "right lower lobe bronchus": [
        "Nasogastric tube courses into the right lower lobe bronchus and should be removed.",
        "The enteric tube is malpositioned, terminating in the right lower lobe bronchus.",
        "NG tube tip is in the right lower lobe bronchus; recommend repositioning.",
    ],
}


def _ng(a: Attrs, rng: Rng) -> Statement:
    mal = 1 if a["malpositioned"] else 0
    return Statement(pick(rng, _NG[a["position"]]),
                     _labels("Nasogastric Tube", **{"NG Tube Malpositioned": mal}))


_APPROACH_ABBR = {
    "right internal jugular": "right IJ",
    "left internal jugular": "left IJ",
    "right subclavian": "right subclavian",
    "left subclavian": "left subclavian",
}


def _cvc(a: Attrs, rng: Rng) -> Statement:
    ap, tip = a["approach"], a["tip"]
    tip_t = {"SVC": pick(rng, ["SVC", "mid SVC", "superior vena cava"])}.get(tip, tip)
    t = pick(rng, [f"{cap(ap)} central venous catheter terminates in the {tip_t}.",
                   f"{cap(_APPROACH_ABBR[ap])} central line tip is in the {tip_t}.",
                   f"A {ap} central line has its tip at the {tip_t}.",
                   f"{cap(ap)} catheter tip projects over the {tip_t}."])
    return Statement(t, _labels("Central Venous Catheter"))


_LEADS = {1: "right ventricle", 2: "right atrium and right ventricle",
          3: "right atrium, right ventricle and coronary sinus"}


def _pacer(a: Attrs, rng: Rng) -> Statement:
    s, n = a["side"], a["leads"]
    t = pick(rng, [f"{cap(s)}-sided pacemaker with leads terminating in the {_LEADS[n]}.",
                   f"A {s} chest wall pacer is present with {n} lead{'s' if n > 1 else ''} "
                   "in expected position.",
                   f"{cap(s)}-sided cardiac pacing device with leads in the {_LEADS[n]}."])
    return Statement(t, _labels("Pacemaker"))


def _sternotomy(a: Attrs, rng: Rng) -> Statement:
    t = pick(rng, ["Median sternotomy wires are intact.",
                   "The patient is status post median sternotomy.",
                   "Intact sternal wires.", "Sternotomy wires are noted."])
    return Statement(t, _labels("Sternotomy Wires"))


PHRASES.add("endotracheal_tube", PhraseSet(
    "Endotracheal Tube", _ett, lambda a: "endotracheal tube"))
PHRASES.add("nasogastric_tube", PhraseSet(
    "Nasogastric Tube", _ng, lambda a: "nasogastric tube"))
PHRASES.add("central_venous_catheter", PhraseSet(
    "Central Venous Catheter", _cvc, lambda a: f"{a['approach']} central venous catheter"))
PHRASES.add("pacemaker", PhraseSet(
    "Pacemaker", _pacer, lambda a: f"{a['side']}-sided pacemaker"))
PHRASES.add("sternotomy_wires", PhraseSet(
    "Sternotomy Wires", _sternotomy, lambda a: "median sternotomy wires"))
