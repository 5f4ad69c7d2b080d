"""Sturdy parsers for LLM replies: explanations and judge verdicts.

delphi's users report explanations lost to a strict parser; models wrap the answer in
markdown, quotes, a different label case or a preamble. ``parse_explanation`` accepts:

- the requested form ``[EXPLANATION]: phrase`` (last occurrence wins), also ``Explanation:``,
  ``**Explanation**:``, ``### Explanation`` followed by the phrase on the next line, with any
  case, bold, italics, backticks or quotes around the label or the phrase;
- a reply that is one short line (at most ``MAX_WORDS`` words) with no label at all.

Anything else raises :class:`UnparsableReply` (recorded as a failed explanation, never
scored): an empty phrase, a multi-line reply without a label, the template's own placeholder
echoed back, or a refusal.

``parse_verdicts(reply, n)`` reads a judge's ``n`` binary verdicts from a list (``[1, 0, 1]``,
``1, 0, 1``), numbered lines (``1: yes``, ``Example 2 - 0``) or, for ``n == 1``, one word
(``yes`` / ``no`` / ``1`` / ``0`` / ``true`` / ``false``); a count other than ``n`` is
unparsable (``None``): a judge that skips an example must not have its other answers shifted.
"""

from __future__ import annotations

import re

MAX_WORDS = 25
"""Longest unlabelled one-line reply taken as the explanation itself."""

_LABEL = re.compile(
    r"^[\s>#*_`\"'\-]*\[?\s*explanation\s*\]?[\s*_`\"']*(?::|-|=|—|\n)[\s*_`]*(?P<rest>.*)$",
    re.IGNORECASE | re.MULTILINE)
_PLACEHOLDER = re.compile(r"^<[^>]*>$|^the short phrase$|^your (short )?(phrase|explanation)$",
                          re.IGNORECASE)
_REFUSAL = re.compile(r"^(i'?m sorry|sorry|i cannot|i can'?t|as an ai)\b", re.IGNORECASE)
_STRIP = " \t\r\n`*_.:;-[]"
_QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019"}


class UnparsableReply(ValueError):
    """The reply holds no explanation (or no complete list of verdicts)."""


def _clean(text: str) -> str:
    """Whitespace collapsed; markdown, brackets, end punctuation and enclosing quotes off (a
    quote inside the phrase, as in ``the word "effusion"``, stays)."""
    text = re.sub(r"\s+", " ", text.replace("**", "").replace("__", "")).strip(_STRIP)
    while len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        text = text[1:-1].strip(_STRIP)
    if text[:1] in _QUOTES and not any(c in text[1:] for c in _QUOTES.values()):
        text = text[1:].strip(_STRIP)  # an opening quote never closed
    closing = {v: k for k, v in _QUOTES.items()}
    if text[-1:] in closing and closing[text[-1]] not in text[:-1]:
        text = text[:-1].strip(_STRIP)  # a closing quote never opened
    return text


def parse_explanation(reply: str) -> str:
    """The explanation phrase in ``reply``; :class:`UnparsableReply` when there is none."""
    text = (reply or "").strip()
    if not text:
        raise UnparsableReply("the reply is empty")
    labelled = list(_LABEL.finditer(text))
    if labelled:
        m = labelled[-1]
        phrase = m.group("rest")
        if not _clean(phrase):  # the label alone on its line: the phrase is on the next one
            after = [ln for ln in text[m.end():].splitlines() if _clean(ln)]
            phrase = after[0] if after else ""
    else:
        lines = [ln for ln in text.splitlines() if _clean(ln)]
        if len(lines) != 1 or len(_clean(lines[0]).split()) > MAX_WORDS:
            raise UnparsableReply(f"no [EXPLANATION]: line in a reply of {len(lines)} lines; "
                                  f"it starts {text[:80]!r}")
        phrase = lines[0]
    phrase = _clean(phrase)
    if not phrase:
        raise UnparsableReply("the [EXPLANATION]: line is empty")
    if _PLACEHOLDER.match(phrase):
        raise UnparsableReply(f"the reply echoes the template's placeholder {phrase!r}")
    if _REFUSAL.match(phrase):
        raise UnparsableReply(f"the reply is a refusal: {phrase[:80]!r}")
    return phrase


_YES = {"1", "yes", "true", "y", "active", "match", "matches"}
_NO = {"0", "no", "false", "n", "inactive", "not active", "no match"}
_NUMBERED = re.compile(
    r"^\W*(?:example|study|item)?\s*#?(?P<i>\d+)\s*[:.)\-=]\s*\W*(?P<v>[a-z01 ]+?)\W*$",
    re.IGNORECASE)
_LIST = re.compile(r"\[([^\[\]]*)\]")


def _verdict(word: str) -> bool | None:
    w = word.strip().strip(_STRIP + "".join(_QUOTES) + "".join(_QUOTES.values())).lower()
    return True if w in _YES else False if w in _NO else None


def parse_verdicts(reply: str, n: int) -> list[bool] | None:
    """``n`` verdicts from ``reply`` (see the module docstring), or None when unparsable."""
    text = (reply or "").strip()
    if not text:
        return None
    for body in reversed(_LIST.findall(text)):  # a bracketed list, the last one first
        vals = [_verdict(x) for x in body.split(",")] if body.strip() else []
        if len(vals) == n and None not in vals:
            return vals  # type: ignore[return-value]
    numbered: dict[int, bool] = {}
    for line in text.splitlines():
        m = _NUMBERED.match(line.strip())
        if m and (v := _verdict(m.group("v"))) is not None:
            numbered[int(m.group("i"))] = v
    if sorted(numbered) == list(range(1, n + 1)):
        return [numbered[i] for i in range(1, n + 1)]
    flat = [x for x in re.split(r"[\s,;]+", text.strip(_STRIP)) if x]
    if len(flat) == n and all(_verdict(x) is not None for x in flat):
        return [bool(_verdict(x)) for x in flat]
    return None


__all__ = ["MAX_WORDS", "UnparsableReply", "parse_explanation", "parse_verdicts"]
