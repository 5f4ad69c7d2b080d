"""What an edit knows about where it runs: :class:`EditContext`, position selectors, :func:`only`.

An edit is ``fn(tensor, ctx) -> new tensor`` (or ``None`` to leave the tensor as it is), run by
:func:`radinterp.hooks.edit` at a canonical site. ``ctx`` says which positions the tensor holds
and whether this forward is the prompt pass or a generated step under the key/value cache::

    steer = only("image", lambda h, ctx: h + 4.0 * direction)      # image patch positions only
    late = only("generated", lambda h, ctx: h - 2.0 * direction)  # generated tokens only
    with edit(adapter, {"lm.blocks.3.resid_post": steer}, batch=batch):
        adapter.model(**adapter.to_device(batch))

Positions are per row: ``ctx.positions()[b, t]`` is the index into row b's own sequence
(its ``TokenLayout``; generated token n of row b sits at ``len(layout_b) + n``), whatever the
left padding. Selectors (registry ``SELECTORS``) map a context to a boolean mask (B, T).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from radinterp.models.tokens import TokenKind, TokenLayout
from radinterp.registry import Registry

PAD = -1
"""Kind / position value of a padding column."""


@dataclass
class EditContext:
    """Where an edit runs: built by the hook for every tensor it edits."""

    site: str
    """Canonical site the edit runs at."""
    columns: torch.Tensor | None
    """(T,) long: columns of the padded batch that the tensor's positions hold (the prompt
    pass: 0..T-1; generated step n under the cache: [n_prompt + n]). None at vision and
    projector sites, whose rows are images, not positions."""
    n_prompt: int | None
    """Width of the padded prompt; columns from here on hold generated tokens."""
    step: int | None
    """Generated step of the last position in this tensor: None when every position is part of
    the prompt (the prompt pass, a teacher-forced forward); n on the forward that reads the
    n-th generated token (0-based; under the cache T is 1 and its column is n_prompt + n)."""
    forward_index: int
    """Language-model forwards so far in this block (0 = the first; -1 before any, e.g. at a
    vision site on the prompt pass)."""
    layouts: tuple[TokenLayout, ...] | None = None
    """Token layout of each tensor row (repeated per returned sequence); None when the edit
    block got no batch: then only position- and step-based selection works."""
    offsets: tuple[int, ...] | None = None
    """Column where each row's tokens start (non-zero under left padding)."""

    @property
    def is_prompt_pass(self) -> bool:
        """True on a forward that holds no generated position."""
        return self.step is None

    def _require_columns(self) -> torch.Tensor:
        if self.columns is None:
            raise ValueError(f"site {self.site!r} holds images, not sequence positions; select "
                             "positions at a language-model site (lm.blocks.{i}.resid_post / resid_pre)")
        return self.columns

    @cached_property
    def _positions(self) -> torch.Tensor:
        cols = self._require_columns()[None, :]  # (1, T)
        if self.layouts is None:
            return cols  # no batch: columns are positions (no padding known)
        off = torch.tensor(self.offsets or [0] * len(self.layouts))[:, None]  # (B, 1)
        lens = torch.tensor([len(layout) for layout in self.layouts])[:, None]  # (B, 1)
        pos = cols - off  # (B, T)
        real = (pos >= 0) & ((pos < lens) | (cols >= (self.n_prompt or 0)))
        return torch.where(real, pos, PAD)

    def positions(self) -> torch.Tensor:
        """(B, T) long: each position's index in its row's own sequence; -1 on padding. Without
        a batch (B is then 1): the columns themselves."""
        return self._positions

    @cached_property
    def _kinds(self) -> torch.Tensor:
        if self.layouts is None:
            raise ValueError(f"the edit at {self.site!r} selects by token kind but has no layouts; "
                             "pass batch= to edit(...) or edit through radinterp.generation.generate")
        pos = self.positions()  # (B, T)
        out = torch.full(pos.shape, PAD, dtype=torch.long)
        for b, layout in enumerate(self.layouts):
            p = pos[b]
            inside = (p >= 0) & (p < len(layout))
            out[b, inside] = torch.from_numpy(layout.kind.astype(np.int64))[p[inside]]
            out[b, p >= len(layout)] = int(TokenKind.GENERATED)
        return out

    def kinds(self) -> torch.Tensor:
        """(B, T) long: the TokenKind of every position; -1 on padding."""
        return self._kinds

    def mask(self, *kinds: TokenKind | str) -> torch.Tensor:
        """(B, T) bool: positions of any of ``kinds`` (TokenKind or its lower-case name)."""
        if not kinds:
            raise ValueError("name at least one token kind, e.g. ctx.mask(TokenKind.IMAGE)")
        wanted = torch.tensor([_kind(k) for k in kinds])
        return torch.isin(self.kinds(), wanted)

    def at(self, positions: Sequence[int] | Sequence[Sequence[int]]) -> torch.Tensor:
        """(B, T) bool: explicit sequence positions, one list for every row or one list per row."""
        pos = self.positions()  # (B, T)
        if isinstance(positions, (torch.Tensor, np.ndarray)):
            positions = positions.tolist()
        if positions and not isinstance(positions[0], (int, np.integer)):
            if len(positions) != pos.shape[0]:
                raise ValueError(f"got {len(positions)} position lists for {pos.shape[0]} rows; "
                                 "pass one list per row, or one list for every row")
            return torch.stack([torch.isin(pos[b], torch.tensor(list(p), dtype=torch.long))
                                for b, p in enumerate(positions)])
        return torch.isin(pos, torch.tensor(list(positions), dtype=torch.long)) & (pos >= 0)

    def select(self, where: Where) -> torch.Tensor:
        """(B, T) (or (1, T) without a batch) bool mask of ``where``: a selector name, explicit
        positions, or a callable ``ctx -> mask``."""
        if isinstance(where, str):
            return SELECTORS.get(where)(self)
        if callable(where):
            return where(self)
        return self.at(where)


def _kind(k: TokenKind | str) -> int:
    if isinstance(k, str):
        try:
            return int(TokenKind[k.upper()])
        except KeyError:
            names = ", ".join(t.name.lower() for t in TokenKind)
            raise ValueError(f"unknown token kind {k!r}; valid kinds: {names}") from None
    return int(k)


Selector = Callable[[EditContext], torch.Tensor]
Where = str | Sequence[int] | Sequence[Sequence[int]] | Selector
EditFn = Callable[[torch.Tensor, EditContext], "torch.Tensor | None"]
SELECTORS: Registry[Selector] = Registry("position selector")


@SELECTORS.register("all")
def select_all(ctx: EditContext) -> torch.Tensor:
    """Every real position (padding excluded)."""
    return ctx.positions() >= 0


@SELECTORS.register("generated")
def select_generated(ctx: EditContext) -> torch.Tensor:
    """Generated tokens (needs no batch: columns from ``n_prompt`` on)."""
    if ctx.layouts is None:
        cols = ctx._require_columns()[None, :]
        return cols >= (ctx.n_prompt if ctx.n_prompt is not None else cols.max() + 1)
    return ctx.mask(TokenKind.GENERATED)


def _kind_selector(name: str, *kinds: TokenKind, doc: str) -> None:
    def select(ctx: EditContext) -> torch.Tensor:
        return ctx.mask(*kinds)

    select.__doc__ = doc
    SELECTORS.add(name, select)


_kind_selector("image", TokenKind.IMAGE, doc="Image patch tokens.")
_kind_selector("boilerplate", TokenKind.BOILERPLATE, doc="Fixed prompt text.")
_kind_selector("prompt_content", TokenKind.PROMPT_CONTENT, doc="Study-specific prompt text.")
_kind_selector("prompt", TokenKind.IMAGE, TokenKind.BOILERPLATE, TokenKind.PROMPT_CONTENT,
               doc="The prompt before the answer: image tokens, boilerplate and prompt content.")
_kind_selector("report", TokenKind.REPORT, doc="Report text fed teacher-forced (not generated).")
_kind_selector("text", TokenKind.BOILERPLATE, TokenKind.PROMPT_CONTENT, TokenKind.REPORT,
               TokenKind.GENERATED, doc="Every non-image position.")


def only(where: Where, fn: EditFn) -> EditFn:
    """An edit applying ``fn`` at the positions ``where`` selects, leaving the others as they
    were. Where nothing is selected (``"generated"`` on the prompt pass) the tensor is not
    touched at all, bit for bit."""

    def apply(h: torch.Tensor, ctx: EditContext) -> torch.Tensor | None:  # h: (B, T, d)
        mask = ctx.select(where).to(h.device)  # (B, T) or (1, T)
        if mask.shape[-1] != h.shape[1] or mask.shape[0] not in (1, h.shape[0]):
            raise ValueError(f"selection of shape {tuple(mask.shape)} does not fit the tensor "
                             f"{tuple(h.shape)} at {ctx.site!r}; pass the batch that is forwarded "
                             "(and num_return_sequences when generating several per study)")
        if not bool(mask.any()):
            return None
        new = fn(h, ctx)
        return h if new is None else torch.where(mask[..., None], new, h)

    return apply
