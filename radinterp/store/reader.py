"""Reading an activation store: index, metadata, row access and streaming batches.

Rows have one global order: rank 0's shards in write order, then rank 1's, and so on. Only
shards committed in a progress record are visible, so a store that is still being written (or
was killed) reads as its committed prefix.
"""

from __future__ import annotations

import copy
import logging
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from radinterp.store.format import META_COLUMNS, ShardFile, StoreError, acts_key, sha256_file
from radinterp.store.kinds import KindsArg, resolve_kinds
from radinterp.store.manifest import RankProgress, read_manifest
from radinterp.store.shuffle import sequential_batches, shuffle_batches
from radinterp.store.batches import SiteBatches, plan_blocks
from radinterp.store.studies import (
    StudySpan,
    build_study_index,
    check_study_ids,
    plan_study_reads,
    reopen_studies,
)

if TYPE_CHECKING:
    from radinterp.data.study import Study

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ShardRef:
    """One committed shard as seen by readers."""

    file: str
    rank: int
    rows: int
    row_offset: int  # first global row index
    sha256: str
    kind_counts: tuple[int, ...]

    def count(self, kinds: np.ndarray | None) -> int:
        if kinds is None:
            return self.rows
        return sum(self.kind_counts[k] for k in kinds if k < len(self.kind_counts))


class Store:
    """A read-only view of an activation store; see ``open_store``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest: dict[str, Any] = read_manifest(self.root)
        ws = int(self.manifest["world_size"])
        self.progress = [RankProgress.load(self.root, r, ws) for r in range(ws)]
        shards, offset = [], 0
        for p in self.progress:
            for e in p.entries:
                if e.file is None:
                    continue
                shards.append(ShardRef(e.file, p.rank, e.rows, offset, e.sha256 or "",
                                       tuple(e.kind_counts)))
                offset += e.rows
        self.shards: list[ShardRef] = shards
        self._offsets = np.array([s.row_offset for s in shards] + [offset], dtype=np.int64)
        self._open: OrderedDict[str, ShardFile] = OrderedDict()
        self._study_index: dict[str, StudySpan | None] | None = None

    # ------------------------------------------------------------------ summary
    @property
    def d_model(self) -> int:
        return int(self.manifest["d_model"])

    @property
    def sites(self) -> list[str]:
        return list(self.manifest["sites"])

    @property
    def complete(self) -> bool:
        """True when every rank finished its slice of studies."""
        return all(p.complete for p in self.progress)

    def num_tokens(self, site: str | None = None, token_kinds: KindsArg = None) -> int:
        """Number of rows (all sites share rows), optionally only of some token kinds."""
        if site is not None:
            self._check_site(site)
        kinds = resolve_kinds(token_kinds)
        return sum(s.count(kinds) for s in self.shards)

    def skipped(self) -> dict[str, str]:
        """Study id -> reason for every study the capture skipped."""
        out: dict[str, str] = {}
        for p in self.progress:
            out.update(p.skipped())
        return out

    def studies(self) -> list[str]:
        """Ids of captured (not skipped) studies, in row order."""
        return [sid for p in self.progress for e in p.entries for sid in e.studies]

    def verify(self) -> None:
        """Recompute every shard's sha256; raise StoreError naming any that differ."""
        bad = [s.file for s in self.shards if sha256_file(self.root / s.file) != s.sha256]
        if bad:
            raise StoreError(f"checksum mismatch in {len(bad)} shard(s): {bad}; the files are "
                             "damaged: restore them or recapture into a new --out folder")

    def _check_site(self, site: str) -> None:
        if site not in self.manifest["sites"]:
            raise StoreError(f"site {site!r} is not in store {self.root}; it holds "
                             f"{', '.join(self.manifest['sites'])}")

    def _shard(self, ref: ShardRef) -> ShardFile:
        f = self._open.pop(ref.file, None) or ShardFile(self.root / ref.file)
        self._open[ref.file] = f
        while len(self._open) > 16:
            self._open.popitem(last=False)[1].close()
        return f

    def head(self, shards: Sequence[ShardRef]) -> Store:
        """A read-only view of this store that sees only ``shards``: a prefix of ``self.shards``
        whose last entry may be cut short (SAE training without its held-out rows). Open files
        are shared; per-study indexes are rebuilt for the view."""
        shards = list(shards)
        ok = len(shards) <= len(self.shards) and all(
            a.file == b.file and a.row_offset == b.row_offset and a.rows <= b.rows
            for a, b in zip(shards, self.shards))
        if not ok or any(s.rows != full.rows for s, full in zip(shards[:-1], self.shards)):
            raise ValueError("a store view takes a prefix of the store's shards (only the last may "
                             "be cut short); build it from store.shards")
        view = copy.copy(self)
        view.shards, view._study_index = shards, None
        return view

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].close()

    # ------------------------------------------------------------------ metadata and rows
    def _locate(self, rows: np.ndarray) -> np.ndarray:
        if rows.size and (rows.min() < 0 or rows.max() >= self._offsets[-1]):
            raise IndexError(f"row index out of range [0, {int(self._offsets[-1])})")
        return np.searchsorted(self._offsets, rows, side="right") - 1

    def metadata(self, rows: Sequence[int] | np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Metadata columns (+ ``study_id``, ``row``) for the given global rows, or all rows."""
        if rows is None:
            parts = [self._shard_meta(i) for i in range(len(self.shards))]
            return _concat_meta(parts)
        rows = np.asarray(rows, dtype=np.int64)
        which = self._locate(rows)
        out = {c: np.empty(rows.shape[0], dt) for c, dt in META_COLUMNS.items()}
        out["study_id"] = np.empty(rows.shape[0], dtype=object)
        out["row"] = rows.copy()
        for i in np.unique(which):
            sel = np.nonzero(which == i)[0]
            m = self._shard_meta(int(i))
            local = rows[sel] - self.shards[i].row_offset
            for c in out:
                out[c][sel] = m[c][local]
        return out

    def _shard_meta(self, i: int, lo: int = 0, hi: int | None = None) -> dict[str, np.ndarray]:
        """Metadata of shard ``i``'s local rows [lo, hi) (default all), one read per column."""
        ref = self.shards[i]
        hi = ref.rows if hi is None else hi
        f = self._shard(ref)
        m = {c: f.read_numpy(c, lo, hi) for c in META_COLUMNS}
        ids = np.array(f.study_ids, dtype=object)
        m["study_id"] = ids[m["study_index"]] if len(ids) else np.empty(0, dtype=object)
        m["row"] = np.arange(ref.row_offset + lo, ref.row_offset + hi, dtype=np.int64)
        return m

    def get_rows(self, site: str, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
        """Activations of arbitrary global rows as float32, (len(rows), d_model)."""
        self._check_site(site)
        rows = np.asarray(rows, dtype=np.int64)
        which = self._locate(rows)
        out = torch.empty(rows.shape[0], self.d_model, dtype=torch.float32)
        for j, (r, i) in enumerate(zip(rows.tolist(), which.tolist(), strict=True)):
            local = r - self.shards[i].row_offset
            out[j] = self._shard(self.shards[i]).read_torch(acts_key(site), local, local + 1)[0]
        return out

    def shard_acts(self, i: int, site: str) -> torch.Tensor:
        """All rows of shard ``i`` (index into ``self.shards``) for one site, float32 (N, d_model)."""
        self._check_site(site)
        return self._shard(self.shards[i]).read_torch(acts_key(site)).float()

    def iter_chunks(
        self, site: str, chunk_rows: int = 8192, token_kinds: KindsArg = None
    ) -> Iterator[tuple[torch.Tensor, dict[str, np.ndarray]]]:
        """Stream the whole store in row order: (acts (n, d_model) float32, metadata) chunks."""
        self._check_site(site)
        kinds = resolve_kinds(token_kinds)
        for i, ref in enumerate(self.shards):
            meta = self._shard_meta(i)
            for lo in range(0, ref.rows, chunk_rows):
                hi = min(lo + chunk_rows, ref.rows)
                acts = self._shard(ref).read_torch(acts_key(site), lo, hi).float()
                m = {c: v[lo:hi] for c, v in meta.items()}
                if kinds is not None:
                    keep = np.isin(m["kind"], kinds)
                    acts, m = acts[torch.from_numpy(keep)], {c: v[keep] for c, v in m.items()}
                yield acts, m

    # ------------------------------------------------------------------ per study
    def study_index(self) -> dict[str, StudySpan | None]:
        """Study id -> ``StudySpan`` (shard, local rows) of every captured study in row order,
        None for a study with no kept rows. Built once, on first use (one read per shard)."""
        if self._study_index is None:
            self._study_index = build_study_index(self)
        return self._study_index

    def study_rows(self, study_id: str, token_kinds: KindsArg = None) -> dict[str, np.ndarray]:
        """Metadata (as ``metadata()``: columns + ``study_id``, ``row``) of one study's rows."""
        return self._study_read(None, study_id, token_kinds)[0]

    def study_acts(self, site: str, study_id: str, token_kinds: KindsArg = None) -> torch.Tensor:
        """Activations of one study's rows at ``site``: float32 (n_rows, d_model)."""
        self._check_site(site)
        acts = self._study_read(site, study_id, token_kinds)[1]
        return acts if acts is not None else torch.empty(0, self.d_model)

    def _study_read(
        self, site: str | None, study_id: str, token_kinds: KindsArg
    ) -> tuple[dict[str, np.ndarray], torch.Tensor | None]:
        index = self.study_index()
        check_study_ids(self, index, [study_id])
        span, kinds = index[study_id], resolve_kinds(token_kinds)
        if span is None:  # captured, but the token filter kept none of its positions
            empty = _concat_meta([])
            return empty, torch.empty(0, self.d_model) if site is not None else None
        meta = self._shard_meta(span.shard, span.start, span.stop)
        acts = None
        if site is not None:
            f = self._shard(self.shards[span.shard])
            acts = f.read_torch(acts_key(site), span.start, span.stop).float()  # (n, d_model)
        return _keep_kinds(meta, acts, kinds)

    def iter_studies(
        self, site: str, study_ids: Sequence[str] | None = None, *, token_kinds: KindsArg = None,
        max_rows: int | None = None,
    ) -> Iterator[tuple[str, dict[str, np.ndarray], torch.Tensor]]:
        """Yield (study_id, metadata, acts (n, d_model) float32) per study, in row order.

        ``study_ids`` picks studies (default: all); studies without rows (after the
        ``token_kinds`` filter) are not yielded. Neighbouring studies of a shard are read
        together, one read per column for up to ``max_rows`` rows (default: 256 MiB of float32
        activations, 16,384 rows at d_model 4096), cut at study boundaries; walking the whole
        store reads each shard once when it holds at most ``max_rows`` rows.
        """
        self._check_site(site)
        kinds = resolve_kinds(token_kinds)
        index = self.study_index()
        if study_ids is not None:
            study_ids = list(study_ids)
            check_study_ids(self, index, study_ids)
        key = acts_key(site)
        max_rows = max_rows or max(1, (256 << 20) // (4 * self.d_model))
        for i, lo, hi, members in plan_study_reads(index, study_ids, max_rows):
            meta = self._shard_meta(i, lo, hi)
            acts = self._shard(self.shards[i]).read_torch(key, lo, hi).float()  # (hi - lo, d_model)
            for sid, span in members:
                a, b = span.start - lo, span.stop - lo
                m, x = _keep_kinds({c: v[a:b] for c, v in meta.items()}, acts[a:b], kinds)
                if x is not None and x.shape[0]:
                    yield sid, m, x

    def open_studies(
        self, data: str | Path | None = None, kind: str | None = None,
        study_ids: Sequence[str] | None = None,
    ) -> list[Study]:
        """The ``Study`` records the store was captured from (or ``study_ids``), in row order;
        ``data`` / ``kind`` override the manifest's data path (if it moved) and source kind."""
        return reopen_studies(self, data=data, kind=kind,
                              study_ids=None if study_ids is None else list(study_ids))

    # ------------------------------------------------------------------ training stream
    def reader(
        self,
        site: str,
        batch_size: int,
        *,
        shuffle_buffer_tokens: int = 1 << 18,
        seed: int = 0,
        token_kinds: KindsArg = None,
        rank: int = 0,
        world_size: int = 1,
        epoch: int = 0,
        drop_last: bool = True,
        block_rows: int = 4096,
        equal_batches: bool = True,
    ) -> Iterator[torch.Tensor]:
        """Yield (batch_size, d_model) float32 batches of one site.

        Shards are cut into blocks of ``block_rows``; the block order is shuffled with
        (seed, epoch) and block j goes to rank ``j % world_size``, so ranks see disjoint rows.
        Rows then pass through a shuffle buffer of ``shuffle_buffer_tokens`` rows (0 reads in
        store order, unshuffled). With ``equal_batches`` every rank yields the same number of
        batches (the smallest), as DDP needs. Deterministic given (seed, epoch, rank, world_size).
        """
        self._check_site(site)
        if not 0 <= rank < world_size:
            raise StoreError(f"rank {rank} outside world_size {world_size}")
        kinds = resolve_kinds(token_kinds)
        plan = plan_blocks(self, kinds, block_rows, seed, epoch, world_size,
                           shuffle=shuffle_buffer_tokens > 0)
        limit = None
        if equal_batches and world_size > 1:
            limit = min(rows // batch_size for rows in plan.rows_per_rank)
        shuffle = shuffle_buffer_tokens > 0  # the shuffle buffer copies each block: reuse is safe
        chunks = self._read_blocks(site, plan.blocks[rank], kinds, reuse=shuffle)
        if shuffle:
            seq = np.random.SeedSequence([seed, epoch, rank, world_size])
            gen = torch.Generator().manual_seed(int(seq.generate_state(1, dtype=np.uint64)[0] >> 1))
            batches = shuffle_batches(chunks, shuffle_buffer_tokens, batch_size, gen, drop_last)
        else:
            batches = sequential_batches(chunks, batch_size, drop_last)
        for n, b in enumerate(batches):
            if limit is not None and n >= limit:
                break
            yield b

    def _read_blocks(
        self, site: str, blocks: list[tuple[int, int, int]], kinds: np.ndarray | None,
        reuse: bool = False,
    ) -> Iterator[torch.Tensor]:
        """Blocks as float32 (n, d_model). With ``reuse`` every block is read into the same
        two buffers (the caller must consume a block before asking for the next): a steady
        allocation pattern keeps the reader's resident memory flat."""
        key = acts_key(site)
        raw: np.ndarray | None = None
        f32: torch.Tensor | None = None
        for i, lo, hi in blocks:
            f = self._shard(self.shards[i])
            if reuse:
                np_dtype, view = f.raw_dtype(key)
                if raw is None or raw.shape[0] < hi - lo or raw.dtype != np_dtype:
                    raw = np.empty((hi - lo, self.d_model), dtype=np_dtype)
                    f32 = torch.empty(hi - lo, self.d_model, dtype=torch.float32)
                assert f32 is not None
                src = torch.from_numpy(f.read_numpy(key, lo, hi, out=raw))
                acts = f32[: hi - lo].copy_(src.view(view) if view is not None else src)
            else:
                acts = f.read_torch(key, lo, hi).float()  # (hi - lo, d_model)
            if kinds is not None:
                keep = np.isin(f.read_numpy("kind", lo, hi), kinds)
                acts = acts[torch.from_numpy(keep)]
            if acts.shape[0]:
                yield acts

    def site_batches(self, site: str, **kwargs: Any) -> SiteBatches:
        """``site`` as fixed-size training batches (iter_batches / num_tokens / d_in), the data
        protocol of SAE trainers (``sae_training.data.ActivationSource``)."""
        self._check_site(site)
        return SiteBatches(self, site, **kwargs)

    def __repr__(self) -> str:
        m = self.manifest
        return (f"Store({str(self.root)!r}, model={m['model']!r}, sites={m['sites']}, "
                f"rows={self.num_tokens()}, shards={len(self.shards)}, complete={self.complete})")


def _keep_kinds(
    meta: dict[str, np.ndarray], acts: torch.Tensor | None, kinds: np.ndarray | None
) -> tuple[dict[str, np.ndarray], torch.Tensor | None]:
    if kinds is None:
        return meta, acts
    keep = np.isin(meta["kind"], kinds)
    return ({c: v[keep] for c, v in meta.items()},
            None if acts is None else acts[torch.from_numpy(keep)])


def _concat_meta(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    cols = [*META_COLUMNS, "study_id", "row"]
    if not parts:
        empty = {c: np.empty(0, META_COLUMNS[c]) for c in META_COLUMNS}
        return {**empty, "study_id": np.empty(0, dtype=object), "row": np.empty(0, np.int64)}
    return {c: np.concatenate([p[c] for p in parts]) for c in cols}


def open_store(path: str | Path) -> Store:
    """Open an activation store folder for reading."""
    return Store(path)
