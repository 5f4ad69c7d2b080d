"""Examples as text for LLM explainers and judges (``ExampleRenderer``).

An example (one study where a latent fires, or a negative) is shown as:

- its firing report / prompt tokens marked ``<<...>>`` in their sentences, with their values
  when asked (``context.example_sentences``: needs the capture model's tokenizer, i.e. the
  store's adapter; without it, or when the study re-tokenises differently, the report is shown
  unmarked and the example says so);
- its firing image patches as a region phrase (``context.region_phrase``: "right lower zone");
- otherwise (no firing text tokens) the study's report as context, cut at ``max_report_chars``.

Judges get the same examples without values (``plain`` for detection: the report only;
``fuzzed`` for fuzzing: the marks moved to as many random tokens of the same kinds and the
region swapped for another one).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autointerp.context import (ZONES, MarkedSentence, encode_study, marked_sentences,
                                patch_heat, region_phrase)
from autointerp.records import Example
from radinterp.data.study import Study
from radinterp.models.prompt import EncodedPrompt
from radinterp.models.tokens import TokenKind

log = logging.getLogger(__name__)

REGIONS = tuple(f"{side} {zone} zone" for side in ("right", "central", "left") for zone in ZONES)
"""Every region phrase ``region_phrase`` can give (fuzzing draws wrong ones from these)."""


@dataclass
class ExampleRenderer:
    """Renders examples of one store's studies; see the module docstring."""

    studies: dict[str, Study]
    """Study id -> its record (``Store.open_studies``)."""
    n_side: int
    """Side of the image patch grid."""
    adapter: Any = None
    """The capture model's adapter (its tokenizer marks text tokens); None: reports unmarked."""
    with_report: bool = True
    """Whether the capture fed the report teacher-forced (the store manifest's config)."""
    max_report_chars: int = 600
    """Report characters shown where no sentence is marked."""
    _encoded: dict[str, EncodedPrompt | None] = field(default_factory=dict, repr=False)

    def encoded(self, study_id: str) -> EncodedPrompt | None:
        """The study's prompt as captured (cached), None without an adapter."""
        if self.adapter is None or study_id not in self.studies:
            return None
        if study_id not in self._encoded:
            self._encoded[study_id] = encode_study(self.adapter, self.studies[study_id],
                                                   with_report=self.with_report)
        return self._encoded[study_id]

    def report(self, study_id: str) -> str:
        """The study's report, cut at ``max_report_chars`` ('' without one)."""
        study = self.studies.get(study_id)
        text = " ".join(((study.report if study else None) or "").split())
        return text if len(text) <= self.max_report_chars else text[: self.max_report_chars] + " ..."

    def sentences(self, ex: Example, positions: np.ndarray | None = None,
                  values: np.ndarray | None = None) -> list[MarkedSentence] | None:
        """Marked sentences of ``ex``'s text tokens (or of ``positions`` / ``values`` in its
        study); [] when it fires on no text token; None when they cannot be marked."""
        text = ex.kinds != TokenKind.IMAGE
        pos = ex.positions[text] if positions is None else positions
        vals = ex.values[text] if values is None else values
        if not len(pos):
            return []
        enc = self.encoded(ex.study_id)
        if enc is None or enc.char_spans is None:
            return None
        ids = np.asarray(enc.input_ids)
        if positions is None and (pos.max() >= len(ids) or (ids[pos] != ex.token_ids[text]).any()):
            log.warning("study %s tokenises differently from its capture; its report is shown "
                        "unmarked", ex.study_id)
            return None
        return marked_sentences(enc.text, enc.char_spans, pos, vals, layout=enc.layout)

    def region(self, ex: Example) -> str | None:
        """Region phrase of ``ex``'s firing frontal patches (None when none fire)."""
        return region_phrase(patch_heat(ex, self.n_side))

    def _lines(self, ex: Example, sents: list[MarkedSentence] | None, region: str | None, *,
               values: bool) -> list[str]:
        lines = []
        if region is not None:
            n = int(ex.is_image.sum())
            lines.append(f"Radiograph: fires on the {region} ({n} patch{'es' * (n != 1)}).")
        if sents:
            lines += [f"Text: {s.describe() if values else s.marked}" for s in sents]
        elif sents is None:
            lines.append(f"Report (the firing words could not be marked): {self.report(ex.study_id)}")
        else:
            lines.append(f"Report: {self.report(ex.study_id)}")
        return lines

    def describe(self, ex: Example, *, values: bool = True) -> str:
        """``ex`` for an explainer: marked text (with values), region, or the report."""
        head = f"activation {ex.activation:.2f}" if values else ""
        body = self._lines(ex, self.sentences(ex), self.region(ex), values=values)
        return "\n".join(([head] if head else []) + body)

    def plain(self, ex: Example) -> str:
        """``ex`` for a detection judge: the study's report only (nothing marked)."""
        return f"Report: {self.report(ex.study_id)}"

    def fuzzed(self, ex: Example, rng: np.random.Generator) -> str | None:
        """``ex`` with its marks moved at random (see the module docstring); None when its text
        tokens cannot be re-marked (no tokenizer, or no other token of their kinds)."""
        text = ex.kinds != TokenKind.IMAGE
        sents: list[MarkedSentence] | None = []
        if text.any():
            enc = self.encoded(ex.study_id)
            if enc is None:
                return None
            kinds = np.asarray(enc.layout.kind)
            pool = np.setdiff1d(np.flatnonzero(np.isin(kinds, np.unique(ex.kinds[text]))),
                                ex.positions[text])
            if not len(pool):
                return None
            pos = np.sort(rng.choice(pool, size=min(int(text.sum()), len(pool)), replace=False))
            sents = self.sentences(ex, pos, np.ones(len(pos), np.float32))
        region = self.region(ex)
        if region is not None:
            region = str(rng.choice([r for r in REGIONS if r != region]))
        return "\n".join(self._lines(ex, sents, region, values=False))

    def marked(self, ex: Example) -> str:
        """``ex`` for a fuzzing judge with its true marks (no values)."""
        return "\n".join(self._lines(ex, self.sentences(ex), self.region(ex), values=False))


__all__ = ["REGIONS", "ExampleRenderer"]
