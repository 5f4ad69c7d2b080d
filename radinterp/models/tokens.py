"""Token kinds: what every sequence position is, carried with every activation row."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class TokenKind(IntEnum):
    IMAGE = 0
    """An image patch token (see image_slot, patch_row, patch_col)."""
    BOILERPLATE = 1
    """Fixed prompt text: system line, instructions, section headers, chat markers."""
    PROMPT_CONTENT = 2
    """Study-specific prompt text: prior report, indication, technique, comparison."""
    REPORT = 3
    """Reference report text fed teacher-forced."""
    GENERATED = 4
    """A token the model generated."""


class ImageSlot(IntEnum):
    NONE = -1
    FRONTAL = 0
    LATERAL = 1
    PRIOR = 2


class PromptField(IntEnum):
    NONE = -1
    PRIOR_REPORT = 0
    INDICATION = 1
    TECHNIQUE = 2
    COMPARISON = 3


@dataclass
class TokenLayout:
    """Per-position tags of one sequence; all arrays have shape (T,)."""

    kind: np.ndarray  # (T,) int8, TokenKind
    image_slot: np.ndarray  # (T,) int8, ImageSlot
    patch_row: np.ndarray  # (T,) int16, -1 when not an image token
    patch_col: np.ndarray  # (T,) int16
    field: np.ndarray  # (T,) int8, PromptField

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    @classmethod
    def empty(cls, n: int) -> TokenLayout:
        return cls(
            kind=np.full(n, TokenKind.BOILERPLATE, np.int8),
            image_slot=np.full(n, ImageSlot.NONE, np.int8),
            patch_row=np.full(n, -1, np.int16),
            patch_col=np.full(n, -1, np.int16),
            field=np.full(n, PromptField.NONE, np.int8),
        )

    @classmethod
    def concat(cls, parts: list[TokenLayout]) -> TokenLayout:
        return cls(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in _FIELDS)  # type: ignore[arg-type]
        )

    def head(self, n: int) -> TokenLayout:
        """The first ``n`` positions' tags."""
        return TokenLayout(*(getattr(self, name)[:n] for name in _FIELDS))  # type: ignore[arg-type]

    def with_generated(self, n_new: int) -> TokenLayout:
        """This layout followed by ``n_new`` generated-token positions."""
        gen = TokenLayout.empty(n_new)
        gen.kind[:] = TokenKind.GENERATED
        return TokenLayout.concat([self, gen])

    def counts(self) -> dict[str, int]:
        """Number of positions per token kind."""
        return {k.name.lower(): int((self.kind == k).sum()) for k in TokenKind}


_FIELDS = ("kind", "image_slot", "patch_row", "patch_col", "field")


# ---------------------------------------------------------------- token filters
# A token filter maps a TokenLayout to a boolean keep-mask of shape (T,). Capture keeps only
# the positions its filter keeps; CLI choices come from the registry keys.
from collections.abc import Callable  # noqa: E402

from radinterp.registry import Registry  # noqa: E402

TokenFilter = Callable[[TokenLayout], np.ndarray]
TOKEN_FILTERS: Registry[TokenFilter] = Registry("token filter")


@TOKEN_FILTERS.register("all")
def keep_all(layout: TokenLayout) -> np.ndarray:
    """Every position."""
    return np.ones(len(layout), dtype=bool)


@TOKEN_FILTERS.register("maira2_sae")
def keep_maira2_sae(layout: TokenLayout) -> np.ndarray:
    """The MAIRA-2 SAE study's filter: drop image tokens and prompt boilerplate; keep prompt
    content (indication, prior report ...), report text and generated tokens."""
    return (layout.kind != TokenKind.IMAGE) & (layout.kind != TokenKind.BOILERPLATE)


@TOKEN_FILTERS.register("image")
def keep_image(layout: TokenLayout) -> np.ndarray:
    """Image patch tokens only."""
    return layout.kind == TokenKind.IMAGE


@TOKEN_FILTERS.register("text")
def keep_text(layout: TokenLayout) -> np.ndarray:
    """Every non-image position."""
    return layout.kind != TokenKind.IMAGE


@TOKEN_FILTERS.register("report")
def keep_report(layout: TokenLayout) -> np.ndarray:
    """Report text, teacher-forced or generated."""
    return (layout.kind == TokenKind.REPORT) | (layout.kind == TokenKind.GENERATED)


def token_filter(name: str) -> TokenFilter:
    """Look up a named token filter (error lists the valid names)."""
    return TOKEN_FILTERS.get(name)
