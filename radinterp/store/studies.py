"""Per-study access to a store: where each study's rows are, and the studies themselves.

A shard holds whole studies and rows are grouped by study, so every captured study is one
contiguous span of one shard. ``build_study_index`` finds the spans from each shard's
``study_index`` column (one small read per shard); the ``Store`` builds it once, lazily, and
its ``study_rows`` / ``study_acts`` / ``iter_studies`` read a study (or a run of neighbouring
studies) with one read per column instead of one per row. ``reopen_studies`` finds the
``Study`` records a store was captured from, through the data path its manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from radinterp.store.format import StoreError

if TYPE_CHECKING:
    from radinterp.data.study import Study
    from radinterp.store.reader import Store


@dataclass(frozen=True)
class StudySpan:
    """Where one study's rows are: shard ``shard`` (index into ``Store.shards``), local rows
    ``[start, stop)``."""

    shard: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def build_study_index(store: Store) -> dict[str, StudySpan | None]:
    """Study id -> its span, for every captured study in row order (None: no rows kept)."""
    index: dict[str, StudySpan | None] = dict.fromkeys(store.studies())
    for i, ref in enumerate(store.shards):
        f = store._shard(ref)
        idx = f.read_numpy("study_index")  # (N,) int32, grouped by study
        ids = f.study_ids
        cuts = np.flatnonzero(np.diff(idx)) + 1
        for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, idx.shape[0]].tolist(), strict=True):
            sid = ids[int(idx[lo])]
            if index.get(sid) is not None:
                raise StoreError(f"study {sid!r} has rows in two places of store {store.root} "
                                 "(shards must hold whole studies); recapture into a new --out")
            index[sid] = StudySpan(i, lo, hi)
    return index


def plan_study_reads(
    index: dict[str, StudySpan | None], study_ids: list[str] | None, max_rows: int
) -> list[tuple[int, int, int, list[tuple[str, StudySpan]]]]:
    """Reads (shard, start, stop, [(study id, span)]) covering the chosen studies in row order:
    neighbouring studies of a shard share one read, cut at study boundaries once a read would
    exceed ``max_rows`` rows (a bigger single study is read whole)."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    chosen = set(index) if study_ids is None else set(study_ids)
    spans = sorted(((sid, s) for sid, s in index.items() if s is not None and sid in chosen),
                   key=lambda item: (item[1].shard, item[1].start))
    reads: list[tuple[int, int, int, list[tuple[str, StudySpan]]]] = []
    for sid, s in spans:
        last = reads[-1] if reads else None
        if (last is not None and last[0] == s.shard and last[2] == s.start
                and s.stop - last[1] <= max_rows):
            reads[-1] = (last[0], last[1], s.stop, [*last[3], (sid, s)])
        else:
            reads.append((s.shard, s.start, s.stop, [(sid, s)]))
    return reads


def check_study_ids(store: Store, index: dict[str, StudySpan | None], study_ids: list[str]) -> None:
    """Raise StoreError naming study ids the store does not hold (and why, when skipped)."""
    missing = [s for s in study_ids if s not in index]
    if not missing:
        return
    skipped = store.skipped()
    why = "; ".join(f"{s!r} was skipped by the capture ({skipped[s]})" if s in skipped
                    else f"{s!r} was not captured" for s in missing[:5])
    more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
    raise StoreError(f"store {store.root} has no rows for {why}{more}; store.studies() lists "
                     f"the {len(index)} captured study ids")


def data_of(store: Store) -> tuple[str, str | None]:
    """(data path, source kind) the store was captured from, as its manifest records them."""
    data = store.manifest.get("data") or {}
    if data.get("path"):
        return str(data["path"]), data.get("kind")
    cfg = store.manifest.get("config") or {}  # stores written before "data" was recorded
    if cfg.get("data"):
        return str(cfg["data"]), cfg.get("data_kind")
    raise StoreError(f"store {store.root} does not record the data it was captured from; "
                     "pass data=PATH (the folder or .jsonl given to `radinterp capture --data`)")


def reopen_studies(
    store: Store, *, data: str | Path | None = None, kind: str | None = None,
    study_ids: list[str] | None = None,
) -> list[Study]:
    """The ``Study`` records of the store's captured studies (or ``study_ids``), in row order,
    read from ``data`` (default: the data path in the manifest) with ``kind`` (default: the
    manifest's, else auto-detected)."""
    from radinterp.data.sources import open_studies

    recorded, recorded_kind = data_of(store)
    path = Path(data) if data is not None else Path(recorded)
    if not path.exists():
        raise StoreError(
            f"the data store {store.root} was captured from, {path}, does not exist (moved or "
            "renamed?); pass its new location: store.open_studies(data=NEW_PATH)")
    kind = kind or (recorded_kind if data is None else None)
    wanted = store.studies() if study_ids is None else list(study_ids)
    check_study_ids(store, {s: None for s in store.studies()}, wanted)
    want = set(wanted)
    found = {s.study_id: s for s in open_studies(path, kind) if s.study_id in want}
    lost = [s for s in wanted if s not in found]
    if lost:
        raise StoreError(
            f"{len(lost)} of the store's studies are not in {path} (e.g. {lost[:3]}); the data "
            "changed since the capture: pass data= the folder or .jsonl it was captured from")
    return [found[s] for s in wanted]


__all__ = ["StudySpan", "build_study_index", "check_study_ids", "data_of", "plan_study_reads",
           "reopen_studies"]
