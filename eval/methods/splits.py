"""Deterministic train / validation / test split by study id.

Each study id is hashed with SHA-256 (salted with the seed; never Python's ``hash()``, which
changes between processes), the ids are sorted by that hash and cut at the requested
fractions. The same ids and seed give the same split on every machine and in every run, and a
study's split does not depend on the order the data source lists it in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

SPLITS = ("train", "val", "test")


def id_hash(study_id: str, seed: int = 0) -> int:
    """Stable 64-bit hash of ``study_id`` salted with ``seed``."""
    digest = hashlib.sha256(f"{seed}:{study_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@dataclass(frozen=True)
class Split:
    """Study ids of each part, each list in hash order."""

    train: tuple[str, ...]
    """Ids the method is fitted on."""
    val: tuple[str, ...]
    """Ids used to choose thresholds and stop early."""
    test: tuple[str, ...]
    """Ids every reported metric is measured on."""

    def part(self, name: str) -> tuple[str, ...]:
        """The ids of ``name`` (train, val or test)."""
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; valid names: {', '.join(SPLITS)}")
        return getattr(self, name)

    def of(self, study_id: str) -> str:
        """Which part ``study_id`` is in."""
        for name in SPLITS:
            if study_id in self.part(name):
                return name
        raise KeyError(f"study {study_id!r} is in no split; pass an id of the split's studies")

    def sizes(self) -> dict[str, int]:
        return {name: len(self.part(name)) for name in SPLITS}


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """(train, val, test) fractions, positive and summing to 1, or a ValueError naming the fix."""
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(f <= 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ValueError(f"split fractions {list(fractions)} must be three positive numbers "
                         "summing to 1 (train, val, test); pass e.g. 0.6,0.2,0.2")
    return fr  # type: ignore[return-value]


def make_split(study_ids: Sequence[str], fractions: Sequence[float] = (0.6, 0.2, 0.2),
               seed: int = 0) -> Split:
    """Split ``study_ids`` into train / val / test; every part gets at least one study."""
    fr = check_fractions(fractions)
    ids = list(study_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("study ids repeat; give every study a unique study_id")
    n = len(ids)
    if n < 3:
        raise ValueError(f"{n} studies cannot fill train, validation and test; pass at least 3 "
                         "(more for meaningful metrics)")
    order = sorted(ids, key=lambda s: (id_hash(s, seed), s))
    n_test = min(max(1, round(fr[2] * n)), n - 2)
    n_val = min(max(1, round(fr[1] * n)), n - n_test - 1)
    n_train = n - n_val - n_test
    return Split(tuple(order[:n_train]), tuple(order[n_train:n_train + n_val]),
                 tuple(order[n_train + n_val:]))


__all__ = ["SPLITS", "Split", "check_fractions", "id_hash", "make_split"]
