"""Prompt construction with exact token kinds.

A prompt is a list of segments (text with a kind, or an image placeholder with a slot). It is
rendered to one string with known character spans, tokenised once with offsets, and each token
takes the kind of the span holding its last character; each image placeholder token is
expanded into ``n_patches`` image tokens tagged with slot and patch row/col. Tokenising the
whole string once keeps the ids identical to what the model's own processor produces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from radinterp.data.study import Study
from radinterp.models.tokens import ImageSlot, PromptField, TokenKind, TokenLayout
from radinterp.registry import Registry

SYSTEM_PROMPT = "You are an expert radiology assistant tasked with interpreting a chest X-ray study."
MISSING = "N/A"


@dataclass(frozen=True)
class Segment:
    """One piece of a prompt: text with a kind, or (``image_slot`` set) an image placeholder."""

    text: str
    kind: TokenKind = TokenKind.BOILERPLATE
    field: PromptField = PromptField.NONE
    image_slot: ImageSlot = ImageSlot.NONE

    @property
    def is_image(self) -> bool:
        return self.image_slot != ImageSlot.NONE


def _section(value: str | None) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _field(label: str, value: str | None, field: PromptField) -> list[Segment]:
    v = _section(value)
    if v is None:  # MAIRA-2 writes "N/A"; it carries the field tag but no study content
        return [Segment(f"{label}{MISSING}", TokenKind.BOILERPLATE, field)]
    return [Segment(label), Segment(v, TokenKind.PROMPT_CONTENT, field)]


def maira2_user_segments(study: Study, image_token: str, *, grounded: bool = False) -> list[Segment]:
    """User turn of MAIRA-2's reporting prompt, in the order of ``Maira2Processor``."""
    if study.frontal is None:
        raise ValueError(
            f"study {study.study_id!r} has no current frontal image; MAIRA-2 requires one: "
            "set Study.frontal to an image path or PIL image"
        )
    has_lat, has_prior = study.lateral is not None, study.prior_frontal is not None
    img = lambda slot: Segment(image_token, TokenKind.IMAGE, image_slot=slot)  # noqa: E731
    segs: list[Segment] = []
    if not has_lat and not has_prior:
        segs += [Segment("Given the current frontal image only"), img(ImageSlot.FRONTAL)]
    else:
        segs += [Segment("Given the current frontal image"), img(ImageSlot.FRONTAL)]
        if has_prior:
            if has_lat:
                segs += [Segment(" the current lateral image"), img(ImageSlot.LATERAL)]
            segs += [Segment(" and the prior frontal image"), img(ImageSlot.PRIOR)]
        else:
            segs += [Segment(" and the current lateral image"), img(ImageSlot.LATERAL)]
    if has_prior:
        segs += _field(" PRIOR_REPORT: ", study.prior_report, PromptField.PRIOR_REPORT)
    instr = (
        " Provide a structured description of the findings in the radiology study in comparison "
        "to the prior frontal image."
    )
    if grounded:
        instr += (
            " Each finding should be described as a self-contained plain-text sentence. If the "
            "finding is groundable, locate the finding in the current frontal chest X-ray image, "
            "with bounding boxes indicating all locations where it can be seen in the current "
            "frontal image. Otherwise, generate just the ungrounded finding without bounding boxes."
        )
    segs.append(Segment(instr))
    segs += _field(" INDICATION: ", study.indication, PromptField.INDICATION)
    segs += _field(" TECHNIQUE: ", study.technique, PromptField.TECHNIQUE)
    segs += _field(" COMPARISON: ", study.comparison, PromptField.COMPARISON)
    return segs


# ---------------------------------------------------------------- renderers
# A renderer turns (tokenizer, user segments, assistant text) into the full segment list.
Renderer = Callable[[object, list[Segment], str | None], list[Segment]]
RENDERERS: Registry[Renderer] = Registry("prompt renderer")


@RENDERERS.register("vicuna")
def render_vicuna(tokenizer, user: list[Segment], assistant: str | None) -> list[Segment]:
    """``<bos>SYSTEM USER: ... ASSISTANT:`` (+ `` report</s>`` when teacher-forced)."""
    segs = [Segment((tokenizer.bos_token or "") + SYSTEM_PROMPT + " USER: "), *user]
    segs.append(Segment(" ASSISTANT:"))
    if assistant is not None:
        segs += [Segment(" "), Segment(assistant, TokenKind.REPORT), Segment(tokenizer.eos_token or "")]
    return segs


@RENDERERS.register("chat_template")
def render_chat_template(tokenizer, user: list[Segment], assistant: str | None) -> list[Segment]:
    """Render with the tokenizer's own chat template, then re-find each segment in the text."""
    def messages(structured: bool) -> list[dict]:
        wrap = (lambda t: [{"type": "text", "text": t}]) if structured else (lambda t: t)
        if structured:  # multimodal templates take typed content parts
            content = [{"type": "image"} if s.is_image else {"type": "text", "text": s.text} for s in user]
        else:  # text-only templates take one string with the image token inline
            content = "".join(s.text for s in user)
        msgs = [{"role": "system", "content": wrap(SYSTEM_PROMPT)}, {"role": "user", "content": content}]
        if assistant is not None:
            msgs.append({"role": "assistant", "content": wrap(assistant)})
        return msgs

    try:
        text = tokenizer.apply_chat_template(messages(True), add_generation_prompt=assistant is None, tokenize=False)
    except TypeError:
        text = tokenizer.apply_chat_template(messages(False), add_generation_prompt=assistant is None, tokenize=False)
    wanted = list(user) + ([Segment(assistant, TokenKind.REPORT)] if assistant is not None else [])
    out: list[Segment] = []
    cursor = 0
    for seg in wanted:
        at = text.find(seg.text, cursor)
        if at < 0:
            raise ValueError(
                f"chat template dropped prompt text {seg.text[:40]!r}; use prompt style 'vicuna'"
            )
        if at > cursor:
            out.append(Segment(text[cursor:at]))
        out.append(seg)
        cursor = at + len(seg.text)
    if cursor < len(text):
        out.append(Segment(text[cursor:]))
    return out


# ---------------------------------------------------------------- tokenisation
@dataclass
class EncodedPrompt:
    input_ids: list[int]
    layout: TokenLayout
    text: str
    n_prompt: int
    """Tokens before the first report token (where generation starts)."""
    char_spans: np.ndarray | None = None
    """(T, 2) character span of each token in ``text`` (an expanded image token: its placeholder's)."""


def encode_segments(
    tokenizer, segments: list[Segment], *, image_token_id: int, n_patches_side: int
) -> EncodedPrompt:
    """Tokenise the rendered segments once, tag tokens, expand image placeholders."""
    text = "".join(s.text for s in segments)
    n = len(text)
    kind = np.full(n, TokenKind.BOILERPLATE, np.int8)
    field = np.full(n, PromptField.NONE, np.int8)
    slots: list[ImageSlot] = []
    pos = 0
    for s in segments:
        kind[pos : pos + len(s.text)] = s.kind
        field[pos : pos + len(s.text)] = s.field
        if s.is_image:
            slots.append(s.image_slot)
        pos += len(s.text)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("a fast tokenizer (with offset mapping) is required; load it with use_fast=True")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    n_patches = n_patches_side * n_patches_side
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    parts: list[TokenLayout] = []
    img_i = 0
    for tid, (a, b) in zip(enc["input_ids"], enc["offset_mapping"]):
        if tid == image_token_id:
            if img_i >= len(slots):
                raise ValueError("prompt text contains an image token that no image fills")
            lay = TokenLayout.empty(n_patches)
            lay.kind[:] = TokenKind.IMAGE
            lay.image_slot[:] = slots[img_i]
            rr, cc = np.divmod(np.arange(n_patches), n_patches_side)
            lay.patch_row[:], lay.patch_col[:] = rr, cc
            ids += [tid] * n_patches
            spans += [(a, b)] * n_patches
            parts.append(lay)
            img_i += 1
            continue
        lay = TokenLayout.empty(1)
        if b > a:
            lay.kind[0], lay.field[0] = kind[b - 1], field[b - 1]
        ids.append(tid)
        spans.append((a, b))
        parts.append(lay)
    if img_i != len(slots):
        raise ValueError(
            f"{len(slots)} images but {img_i} image tokens after tokenisation; the tokenizer must "
            "treat the image token as one special token"
        )
    layout = TokenLayout.concat(parts)
    report = np.flatnonzero(layout.kind == TokenKind.REPORT)
    # with a report, generation would start at the first report token; otherwise at the end
    n_prompt = int(report[0]) if len(report) else len(ids)
    return EncodedPrompt(ids, layout, text, n_prompt, np.asarray(spans, dtype=np.int64).reshape(-1, 2))
