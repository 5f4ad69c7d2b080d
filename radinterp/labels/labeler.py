"""Rule-based CheXpert-style report labeler: mention extraction, negation / uncertainty
detection with scopes, laterality, and CheXpert aggregation.

Usage::

    label_report("No pneumothorax. Small left pleural effusion.")
    # {'Pneumothorax': 0, 'Pleural Effusion': 1}
    Labeler().extract(text)   # -> list[Mention] with value, side and sentence
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from radinterp.labels import text as T
from radinterp.labels.observations import (
    ALL_LABELS,
    DEVICE_SUBTYPES,
    finalize_labels,
    merge_labels,
)
from radinterp.labels.vocab import compile_all

_NG_MALPOSITION = re.compile(
    r"esophag|above the (?:gastroesophageal junction|diaphragm|hiatus)|bronch|airway|"
    r"trachea(?!l)|malposition|should be advanced|recommend advancing|advancing|"
    r"(?:should|could|can|needs? to) be (?:advanced|repositioned|pulled back|withdrawn|removed)|"
    r"coiled|kinked|pharynx|recommend repositioning|side ?port (?:is )?(?:at|above|near)|"
    r"in the (?:right|left) (?:lung|lower lobe|upper lobe|middle lobe)"
)
_NG_OK = re.compile(
    r"stomach|gastric (?:body|fundus|antrum)|below the (?:diaphragm|gastroesophageal junction)|"
    r"duodenum|(?:appropriate|satisfactory|standard|good|expected|adequate) position|"
    r"appropriately (?:positioned|placed)|(?:in|at) (?:the )?expected location|"
    r"courses? (?:below|beyond) the diaphragm|out of view below|below the field of view"
)
_NG_UNSURE = re.compile(r"tip (?:is )?(?:not (?:well )?(?:seen|visualized|identified|included)|"
                        r"obscured|indeterminate)")


_DEVICES = frozenset(DEVICE_SUBTYPES) | {"Support Devices"}


@dataclass(frozen=True)
class Mention:
    """One observation mention in one sentence."""

    observation: str
    value: int
    """1 positive, 0 negative, -1 uncertain."""
    text: str
    """Matched phrase (normalised)."""
    sentence: str
    """Normalised sentence it occurs in."""
    start: int
    end: int
    side: str | None
    """'right' / 'left' / 'bilateral' where the sentence says so near the mention."""


@dataclass(frozen=True)
class _Cue:
    start: int
    end: int
    kind: str  # "neg" / "unc"
    post: bool


def _spans(rx: re.Pattern[str], s: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in rx.finditer(s) if m.end() > m.start()]


def _overlaps(a: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(a[0] < e and s < a[1] for s, e in spans)


class Labeler:
    """CheXpert observations + device subtypes from free report text."""

    def __init__(self, observations: tuple[str, ...] = ALL_LABELS) -> None:
        self.observations = observations
        patterns, self._exclude = compile_all()
        self._patterns = [p for p in patterns if p[0] in observations or p[0] == "Support Devices"]

    # ---- public API -----------------------------------------------------------------------
    def label(self, text: str) -> dict[str, int]:
        """Observation -> 1 / 0 / -1 for the report ``text``; unmentioned ones are omitted."""
        if not text or not text.strip():
            return {}
        mentions = self.extract(text)
        labels = finalize_labels(merge_labels({m.observation: m.value} for m in mentions))
        return {k: v for k, v in labels.items() if k in self.observations}

    __call__ = label

    def extract(self, text: str) -> list[Mention]:
        """All mentions with their value and side, in reading order."""
        out: list[Mention] = []
        for raw in T.split_sentences(text):
            out += self._sentence(T.normalise(raw))
        return out

    # ---- internals ------------------------------------------------------------------------
    def _cues(self, s: str) -> tuple[list[_Cue], list[tuple[int, int]]]:
        pseudo = _spans(T.PSEUDO, s)
        cues: list[_Cue] = []
        unc_spans = []
        for rx, post in ((T.UNCERTAIN_POST, True), (T.UNCERTAIN_PRE, False)):
            for sp in _spans(rx, s):
                if not _overlaps(sp, unc_spans):
                    unc_spans.append(sp)
                    cues.append(_Cue(sp[0], sp[1], "unc", post))
        neg_spans: list[tuple[int, int]] = []
        for rx, post in ((T.NEGATION_POST, True), (T.NEGATION_PRE, False)):
            for sp in _spans(rx, s):
                if not _overlaps(sp, pseudo + unc_spans + neg_spans):
                    neg_spans.append(sp)
                    cues.append(_Cue(sp[0], sp[1], "neg", post))
        return cues, _spans(T.TERMINATION, s)

    def _find_mentions(self, s: str) -> list[tuple[str, int, int, int | None]]:
        masked = _spans(self._exclude, s)
        found = []
        for obs, rx, fixed in self._patterns:
            for m in rx.finditer(s):
                if not _overlaps((m.start(), m.end()), masked):
                    found.append((obs, m.start(), m.end(), fixed))
        # drop a mention nested in a longer mention of another observation, and duplicates
        keep = []
        for i, (obs, a, b, fixed) in enumerate(found):
            nested = any(
                (o2 != obs and a2 <= a and b <= b2 and (b2 - a2) > (b - a)
                 and (f2 is None or fixed is None))  # two attribute phrases may nest
                or (o2 == obs and a2 <= a and b <= b2 and (b2 - a2, -j) > (b - a, -i))
                for j, (o2, a2, b2, f2) in enumerate(found) if j != i
            )
            if not nested:
                keep.append((obs, a, b, fixed))
        return sorted(keep, key=lambda t: t[1])

    def _value(
        self, s: str, a: int, b: int, cues: list[_Cue], terms: list[tuple[int, int]],
        device: bool = False,
    ) -> int | None:
        def blocked(lo: int, hi: int) -> bool:
            return any(lo <= ts and te <= hi for ts, te in terms)

        pre = [c for c in cues if not c.post and c.end <= a and not blocked(c.end, a)]
        if pre:
            c = max(pre, key=lambda c: c.end)
            if c.kind == "unc" and any(p.kind == "neg" for p in pre):
                return 0  # "no findings to suggest pneumonia": the negation governs
            return 0 if c.kind == "neg" else -1
        post = [c for c in cues if c.post and c.start >= b and not blocked(b, c.start)
                and "," not in s[b : c.start] and len(s[b : c.start].split()) <= 8]
        if post:
            c = min(post, key=lambda c: c.start)
            if device and "tip" in s:  # "the NG tube tip is not seen": the tip, not the tube
                return None
            return 0 if c.kind == "neg" else -1
        return None

    def _sentence(self, s: str) -> list[Mention]:
        cues, terms = self._cues(s)
        found = self._find_mentions(s)
        out: list[Mention] = []
        for obs, a, b, fixed in found:
            v = fixed
            if fixed is None or fixed == 1:
                cue_v = self._value(s, a, b, cues, terms, obs in _DEVICES)
                v = cue_v if cue_v is not None else 1
                if fixed == 1 and cue_v is None and re.search(
                    r"\b(?:likely|probably|possibly|may|might|could|perhaps)\b", s[a:b]
                ):
                    v = -1
            others = [a2 for o2, a2, _, _ in found if o2 != obs]
            out.append(Mention(obs, int(v), s[a:b], s, a, b, self._side(s, a, b, others)))
        # "atelectasis or pneumonia": both uncertain unless negated
        for i in range(len(out) - 1):
            m1, m2 = out[i], out[i + 1]
            if m1.observation != m2.observation and T.OR_JOIN.match(s[m1.end : m2.start]):
                for k, m in ((i, m1), (i + 1, m2)):
                    if m.value == 1:
                        out[k] = Mention(m.observation, -1, m.text, s, m.start, m.end, m.side)
        return out + self._ng_position(s, out)

    @staticmethod
    def _ng_position(s: str, mentions: list[Mention]) -> list[Mention]:
        ng = [m for m in mentions if m.observation == "Nasogastric Tube" and m.value == 1]
        if not ng:
            return []
        m = ng[0]
        tail = s[m.start :]
        if _NG_MALPOSITION.search(tail):
            v = 1
        elif _NG_OK.search(tail):
            v = 0
        elif _NG_UNSURE.search(tail):
            v = -1
        else:
            return []
        return [Mention("NG Tube Malpositioned", v, m.text, s, m.start, m.end, m.side)]

    @staticmethod
    def _side(s: str, a: int, b: int, others: list[int]) -> str | None:
        """Side word nearest the mention within its clause (preceding words first);
        ``others`` are the start offsets of the sentence's other-observation mentions."""
        bounds = [0] + [m.end() for m in _CLAUSE.finditer(s)] + [len(s)]
        lo = max(x for x in bounds if x <= a)
        hi = min(x for x in bounds if x >= b)
        words = [(w.start(), w.group(1)) for w in T.SIDE_WORDS.finditer(s, lo, hi)]
        pre = [w for w in words if w[0] < a]
        post = [w for w in words if w[0] >= b]
        if not pre and not post:
            # "a left pleural line is visible, consistent with a pneumothorax": borrow the
            # nearest earlier side word unless another finding's mention sits in between
            earlier = [(w.start(), w.group(1)) for w in T.SIDE_WORDS.finditer(s, 0, lo)]
            if not earlier or any(earlier[-1][0] < sa < a for sa in others):
                return None
            pre = earlier[-1:]
        pos, word = pre[-1] if pre else post[0]
        if word not in ("right", "left"):
            return "bilateral"
        opposite = "left" if word == "right" else "right"
        if re.search(rf"\b{opposite}\b[^,;]{{0,25}}\band\s+(?:\w+\s+)?$", s[lo:pos]):
            return "bilateral"  # "moderate right and small left effusions"
        return word


_CLAUSE = re.compile(r"[,;]|\bbut\b|\bwith\b|\band (?=there|the )")


_DEFAULT: Labeler | None = None


def label_report(text: str) -> dict[str, int]:
    """Labels of one report with the default :class:`Labeler`."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Labeler()
    return _DEFAULT.label(text)
