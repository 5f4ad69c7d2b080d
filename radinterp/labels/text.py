"""Report text handling: abbreviations, anonymisation tokens, sentence splitting, and the
negation / uncertainty / scope-termination cues (NegEx-style, tuned for CXR reports)."""

from __future__ import annotations

import re

ABBREVIATIONS: list[tuple[str, str]] = [
    (r"\bapprox\.", "approximately"),
    (r"\bvs\.", "versus"),
    (r"\bvs\b", "versus"),
    (r"\be\.g\.", "for example"),
    (r"\bi\.e\.", "that is"),
    (r"\bw/o\b", "without"),
    (r"\bw/", "with "),
    (r"\bs/p\b", "status post"),
    (r"\bb/l\b", "bilateral"),
    (r"\bbilat\b", "bilateral"),
    (r"\br/o\b", "rule out"),
    (r"\bh/o\b", "history of"),
    (r"\be\.?t\.? tube\b", "endotracheal tube"),
    (r"\bett(?: tube)?\b", "endotracheal tube"),
    (r"\bng/og(?: tube)?\b", "nasogastric tube"),
    (r"\bngt\b", "nasogastric tube"),
    (r"\bng(?: tube)?\b(?!/)", "nasogastric tube"),
    (r"\bogt\b", "orogastric tube"),
    (r"\bog(?: tube)?\b", "orogastric tube"),
    (r"\bptx\b", "pneumothorax"),
    (r"\bchf\b", "congestive heart failure"),
    (r"\bcvc\b|\bcvl\b", "central venous catheter"),
    (r"\bij\b", "internal jugular"),
    (r"\bpna\b", "pneumonia"),
    (r"\batx\b", "atelectasis"),
    (r"\bfx\b", "fracture"),
    (r"\bgej\b|\bge junction\b|\bg-e junction\b", "gastroesophageal junction"),
    (r"\brt\b", "right"),
    (r"\blt\b", "left"),
    (r"\bcxr\b", "chest radiograph"),
    (r"\bx{2,}\b", "xxxx"),  # Open-i anonymisation
    (r"_{2,}", "xxxx"),  # MIMIC anonymisation
]
_ABBR = [(re.compile(p, re.IGNORECASE), r) for p, r in ABBREVIATIONS]

_SPLIT = re.compile(r"(?<=[.!?;])\s+|\n\s*|(?<=\D)\.(?=[A-Z])")
_PROTECTED = re.compile(r"\b(approx|vs|e\.g|i\.e|dr)\.", re.IGNORECASE)
_HEADER = re.compile(r"\s*(?:findings|impression|conclusion|indication|technique|comparison|"
                     r"history|exam|examination|report)\s*:\s*", re.IGNORECASE)


def normalise(sentence: str) -> str:
    """Lower-case, expand abbreviations, squeeze spaces."""
    s = sentence
    for pat, rep in _ABBR:
        s = pat.sub(rep, s)
    s = s.lower().replace("-year-old", " year old")
    return re.sub(r"\s+", " ", s).strip()


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the sentences of ``text``: split after ``.``, ``!``,
    ``?`` or ``;`` followed by space, at line breaks and at a run-on full stop ("effusion.The");
    section headers ("FINDINGS:") and surrounding space are left out, decimals and "approx.",
    "vs.", "e.g.", "i.e.", "Dr." stay inside their sentence, and spans without a letter are
    dropped."""
    # protected full stops become a one-character placeholder, so offsets stay those of text
    masked = _PROTECTED.sub(lambda m: m.group(1) + "\u2024", text)
    out, start = [], 0
    for sep in [*_SPLIT.finditer(masked), None]:
        a, b = start, sep.start() if sep else len(masked)
        start = sep.end() if sep else b
        header = _HEADER.match(masked, a, b)
        if header:
            a = header.end()
        piece = masked[a:b]
        a, b = a + len(piece) - len(piece.lstrip()), b - (len(piece) - len(piece.rstrip()))
        if a < b and re.search(r"[a-zA-Z]", masked[a:b]):
            out.append((a, b))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of a report (see :func:`sentence_spans`)."""
    return [text[a:b] for a, b in sentence_spans(text)]


def _rx(words: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(rf"(?<![\w]){w}(?![\w])" for w in words))


PSEUDO = _rx([
    r"no (?:significant |appreciable |substantial |definite |major |other )?(?:interval )?"
    r"(?:change|changes)", r"without (?:significant |interval )?change",
    r"not (?:significantly |substantially )?changed", r"no (?:significant )?(?:increase|decrease|"
    r"worsening|progression|improvement)", r"not only", r"not well (?:assessed|evaluated|seen|"
    r"visualized)",
])
"""Phrases with a negation word that negate nothing ("no change in the effusion")."""

UNCERTAIN_PRE = _rx([
    r"possible", r"possibly", r"may", r"might", r"could", r"can be", r"(?:most )?likely",
    r"probable", r"probably", r"presumably", r"presumed", r"suspected", r"suspicious (?:for|of)",
    r"suspicion (?:of|for)", r"concerning for", r"concern for", r"worrisome for", r"question of",
    r"questionable", r"questioned", r"query", r"suggestive of", r"suggests?", r"suggesting",
    r"consider(?:ed)?", r"cannot exclude", r"can not exclude", r"(?:cannot|can not|could not) "
    r"rule out", r"rule out", r"differential(?: diagnosis)?(?: includes?)?", r"borderline",
    r"equivocal", r"indeterminate", r"potential(?:ly)?", r"perhaps", r"versus", r"either",
    r"not well (?:assessed|evaluated|seen|visualized)",
])
UNCERTAIN_POST = _rx([
    r"(?:cannot|can not|could not) be (?:entirely |completely )?(?:excluded|ruled out)",
    r"(?:is |are )?not (?:entirely |completely )?(?:excluded|ruled out)",
    r"(?:is|are) (?:also )?(?:possible|suspected|questioned|(?:most )?likely|a consideration|"
    r"considered|favored|not excluded)", r"difficult to exclude", r"could be present",
    r"may be present", r"\?", r"not well (?:assessed|evaluated|seen|visualized)", r"versus",
])
NEGATION_PRE = _rx([
    r"no", r"not", r"without", r"negative for", r"free of", r"absence of", r"resolution of",
    r"resolved", r"removal of", r"clear of", r"no longer", r"nor", r"rather than",
])
NEGATION_POST = _rx([
    r"(?:is |are |was |were )?not (?:seen|identified|visualized|appreciated|present|evident|"
    r"demonstrated|noted|detected|visible)", r"(?:has |have )?(?:since )?(?:resolved|cleared)",
    r"(?:has |have )?(?:since )?been (?:removed|withdrawn|discontinued)", r"removed",
    r"(?:is |are )?no longer (?:seen|visualized|present|evident|identified|visible|appreciated)?",
    r"(?:is |are )?absent", r"(?:is |are |been )?ruled out", r"(?:is |are )?excluded",
])
TERMINATION = _rx([
    r"but", r"however", r"although", r"though", r"except", r"aside from", r"apart from",
    r"which", r"with the exception", r";", r":", r"there (?:is|are|has been|have been)",
    r"status post", r"following", r"after", r"secondary to", r"due to", r"in the setting of",
    r"since", r"stable", r"unchanged", r"persistent", r"again (?:seen|noted)",
    r"redemonstrat\w*", r"and (?:a|an|the|there)", r"with", r"otherwise", r"given",
    r",\s+(?:small|moderate|large|mild|severe|minimal|trace|tiny|extensive|patchy|increased|"
    r"decreased|new|worsening|improving|possible|probable|likely)",
])
OR_JOIN = re.compile(r"^\s*,?\s*(?:or|versus|and/or)\s+(?:[a-z-]+\s+){0,3}$")
"""Text between two mentions that makes both uncertain ("atelectasis or pneumonia")."""

SIDE_WORDS = re.compile(
    r"(?<![\w])(right|left|bilateral(?:ly)?|bibasilar|biapical|both|bibasal)(?![\w])"
)
