"""Token-kind filters of store reads: ``TokenKind`` values or names -> the stored int8 codes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from radinterp.store.format import StoreError

KindsArg = Sequence[int | str] | None  # TokenKind values or names


def resolve_kinds(kinds: KindsArg) -> np.ndarray | None:
    """Token kinds given as TokenKind, int or name ("image", "report") -> int8 array."""
    if kinds is None:
        return None
    # imported here: radinterp.models' package init pulls in transformers (seconds)
    from radinterp.models.tokens import TokenKind

    out = []
    for k in kinds:
        if isinstance(k, str):
            try:
                k = TokenKind[k.upper()]
            except KeyError:
                names = ", ".join(t.name.lower() for t in TokenKind)
                raise StoreError(f"unknown token kind {k!r}; valid kinds: {names}") from None
        out.append(int(TokenKind(int(k))))
    return np.array(sorted(set(out)), dtype=np.int8)
