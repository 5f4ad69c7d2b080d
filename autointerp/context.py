"""What an explainer sees of an example: marked sentences, heatmaps, region phrases, labels.

- Text tokens: the store keeps each row's sequence position and token id, not its text, so the
  study is re-tokenised with the adapter's own prompt encoder (``adapter.encode_prompt``, the
  encoder the capture used; ``encode_study``), which gives the rendered prompt and each
  position's character span. The example's token ids are checked against it (a mismatch means
  the prompt or tokenizer changed since the capture). Sentences come from the core splitter
  (``radinterp.labels.sentence_spans``); activating tokens are marked ``<<...>>`` (adjacent
  ones share one mark) and their values listed beside.
- Image tokens: the firing patches of one image (``ImageSlot``) as an (n_side, n_side) heatmap,
  drawn over the radiograph with ``radinterp.overlay.write_overlay``, and as a region phrase
  ("right lower zone") from the activation-weighted centroid on the patch grid. Radiographs
  are displayed in the radiological convention, the patient's right on the image's LEFT: a
  centroid in the left part of the image is the patient's right.
- Labels: the study's own reference labels when present, else the core labeler's
  (``radinterp.labels.label_report``) on its report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autointerp.records import Example
from radinterp.data.study import Study
from radinterp.labels import label_report, sentence_spans
from radinterp.models.geometry import PatchGeometry
from radinterp.models.prompt import EncodedPrompt
from radinterp.models.tokens import ImageSlot, TokenKind, TokenLayout
from radinterp.overlay import write_overlay

SIDE_BAND = 0.1
"""Half-width (fraction of the grid) of the central band where the side is ``central``."""
ZONES = ("upper", "middle", "lower")
"""Zones by thirds of the grid's height, top to bottom."""


@dataclass
class MarkedSentence:
    """One sentence holding activating tokens."""

    text: str
    """The sentence as written."""
    marked: str
    """The sentence with the activating tokens marked ``<<...>>``."""
    tokens: list[str]
    """Text of each activating token, in reading order."""
    values: list[float]
    """Activation at each of ``tokens``."""

    def describe(self, digits: int = 2) -> str:
        """``marked`` followed by the token values, e.g. ``... <<effusion>> ... (effusion 3.1)``."""
        vals = ", ".join(f"{t.strip()} {v:.{digits}f}" for t, v in zip(self.tokens, self.values))
        return f"{self.marked} ({vals})"


def encode_study(adapter, study: Study, *, with_report: bool = True) -> EncodedPrompt:
    """The study's prompt as the capture encoded it (report teacher-forced when it has one and
    ``with_report``, as ``radinterp capture --with-report`` does)."""
    return adapter.encode_prompt(study, with_report=with_report and bool(study.report))


def marked_sentences(text: str, char_spans: np.ndarray, positions: np.ndarray,
                     values: np.ndarray, *, layout: TokenLayout | None = None, left: str = "<<",
                     right: str = ">>") -> list[MarkedSentence]:
    """Sentences of ``text`` holding the tokens at ``positions`` (char spans ``char_spans``
    (T, 2)), marked, in reading order. With ``layout`` a sentence never leaves its token's
    segment (the run of tokens of one kind and prompt field: the report, the indication),
    so chat markers and headers stay out. A token outside every sentence gets its line."""
    bounds = _segments(layout, char_spans) if layout is not None else None
    toks = []
    for p, v in zip(np.asarray(positions).tolist(), np.asarray(values).tolist()):
        a, b = (int(c) for c in char_spans[p])
        while a < b and text[a].isspace():
            a += 1
        if a < b:
            seg = (0, len(text)) if bounds is None else (int(bounds[p, 0]), int(bounds[p, 1]))
            toks.append((a, b, float(v), seg))
    toks.sort()
    cache: dict[tuple[int, int], list[tuple[int, int]]] = {}
    groups: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
    for a, b, v, (s0, e0) in toks:
        if (s0, e0) not in cache:
            cache[(s0, e0)] = [(s0 + x, s0 + y) for x, y in sentence_spans(text[s0:e0])]
        home = next(((s, e) for s, e in cache[(s0, e0)] if s <= a < e), None)
        if home is None:
            home = (max(text.rfind("\n", 0, a) + 1, s0), min(_line_end(text, b), max(e0, b)))
        groups.setdefault(home, []).append((a, b, v))
    out = []
    for (s, e), members in sorted(groups.items()):
        e = max(e, max(b for _, b, _ in members))
        pieces, cur = [], s
        for a, b, _ in members:
            if a < cur:  # a second token inside the previous one's span: already marked
                continue
            if pieces and a == cur and pieces[-1] == right:
                pieces.pop()  # adjacent to the previous mark: extend it
            else:
                pieces += [text[cur:a], left]
            pieces += [text[a:b], right]
            cur = b
        pieces.append(text[cur:e])
        out.append(MarkedSentence(text[s:e], "".join(pieces), [text[a:b] for a, b, _ in members],
                                  [v for _, _, v in members]))
    return out


def _segments(layout: TokenLayout, char_spans: np.ndarray) -> np.ndarray:
    """(T, 2) character range of each token's segment: its run of tokens of one kind and
    field."""
    kind, field = np.asarray(layout.kind), np.asarray(layout.field)
    change = np.r_[True, (kind[1:] != kind[:-1]) | (field[1:] != field[:-1])]
    run = np.cumsum(change) - 1  # (T,)
    first = np.flatnonzero(change)
    last = np.r_[first[1:] - 1, len(kind) - 1]
    return np.stack([char_spans[first, 0][run], char_spans[last, 1][run]], 1)


def _line_end(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j


def example_sentences(example: Example, encoded: EncodedPrompt) -> list[MarkedSentence]:
    """The marked sentences of ``example``'s text tokens in its study's ``encoded`` prompt
    (``encode_study``)."""
    text = example.kinds != TokenKind.IMAGE
    pos = example.positions[text]
    if encoded.char_spans is None:
        raise ValueError("the encoded prompt has no char_spans; build it with "
                         "adapter.encode_prompt (encode_study)")
    ids = np.asarray(encoded.input_ids)
    if len(pos) and (pos.max() >= len(ids) or (ids[pos] != example.token_ids[text]).any()):
        raise ValueError(
            f"study {example.study_id!r} tokenises differently from its capture (token ids at the "
            "activating positions differ); encode it with the store's model and with_report as "
            "captured (the store manifest's config)")
    return marked_sentences(encoded.text, encoded.char_spans, pos, example.values[text],
                            layout=encoded.layout)


def patch_heat(example: Example, n_side: int, slot: ImageSlot = ImageSlot.FRONTAL) -> np.ndarray:
    """(n_side, n_side) float64 activation of ``example`` on image ``slot``'s patch grid
    (0 where it does not fire)."""
    heat = np.zeros((n_side, n_side))
    on = (example.kinds == TokenKind.IMAGE) & (example.image_slot == slot)
    r, c = example.patch_row[on].astype(np.int64), example.patch_col[on].astype(np.int64)
    if len(r) and (r.max() >= n_side or c.max() >= n_side):
        raise ValueError(f"patch ({r.max()}, {c.max()}) outside a {n_side} x {n_side} grid; "
                         "pass the n_side of the store's model (adapter.n_patches_side)")
    np.maximum.at(heat, (r, c), example.values[on].astype(np.float64))
    return heat


def region_phrase(heat: np.ndarray) -> str | None:
    """Side and zone of the activation-weighted centroid of ``heat`` (n_side, n_side), e.g.
    ``right lower zone``, in the patient's frame: column 0 (the image's left) is the patient's
    right. ``central`` within ``SIDE_BAND`` of the midline. None when ``heat`` is all zero."""
    heat = np.clip(np.asarray(heat, dtype=np.float64), 0.0, None)
    total = heat.sum()
    if total <= 0:
        return None
    n_rows, n_cols = heat.shape
    y = float((heat.sum(1) * (np.arange(n_rows) + 0.5)).sum() / total / n_rows)  # 0 top, 1 bottom
    x = float((heat.sum(0) * (np.arange(n_cols) + 0.5)).sum() / total / n_cols)  # 0 image left
    side = "central" if abs(x - 0.5) < SIDE_BAND else ("right" if x < 0.5 else "left")
    zone = ZONES[min(int(y * len(ZONES)), len(ZONES) - 1)]
    return f"{side} {zone} zone"


def slot_image(study: Study, slot: ImageSlot = ImageSlot.FRONTAL):
    """The study's image for ``slot`` (path or PIL image); raises when the study lacks it."""
    image = {ImageSlot.FRONTAL: study.frontal, ImageSlot.LATERAL: study.lateral,
             ImageSlot.PRIOR: study.prior_frontal}[ImageSlot(slot)]
    if image is None:
        raise ValueError(f"study {study.study_id!r} has no {ImageSlot(slot).name.lower()} image; "
                         "pick a slot the example fires on (example.image_slot)")
    return image


def write_example_heatmap(path: str | Path, example: Example, study: Study, adapter, *,
                          slot: ImageSlot = ImageSlot.FRONTAL, **overlay) -> Path:
    """Write ``example``'s firing patches on image ``slot`` over the radiograph as a PNG
    (``overlay``: ``write_overlay`` options such as ``cmap``, ``alpha``)."""
    image = slot_image(study, slot)
    geometry: PatchGeometry = adapter.patch_geometry(image)
    return write_overlay(path, image, patch_heat(example, geometry.n_side, slot), geometry,
                         **overlay)


def study_labels(study: Study) -> dict[str, int]:
    """The study's reference labels, else the core labeler's on its report ({} without one)."""
    if study.labels:
        return dict(study.labels)
    return label_report(study.report) if study.report else {}


__all__ = ["MarkedSentence", "encode_study", "example_sentences", "marked_sentences",
           "patch_heat", "region_phrase", "slot_image", "study_labels", "write_example_heatmap"]
