"""StoreWriter: append activations study by study; shards roll over by size and commit atomically.

Usable without a model::

    manifest = make_manifest(model="m", sites=["lm.blocks.1.resid_post"], dtype="float32",
                             d_model=8, token_filter="all")
    with StoreWriter(root, manifest) as w:
        w.append(["s0", "s1"], {"lm.blocks.1.resid_post": acts}, meta)  # acts: (N, d_model)
        w.mark_skipped("s2", "missing image /x.png")

Commit protocol (per shard): serialize -> temp file -> fsync -> rename -> fsync dir -> append
the entry (sha256, rows, studies) to ``progress/rankNNNNN.json`` atomically. Shards close on
study boundaries once ``shard_bytes`` is reached, so shard contents depend only on the
sequence of studies: a rerun after a crash rewrites exactly the shards an uninterrupted run
writes. Shard files not yet in the progress record are orphans and are deleted on reopen.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radinterp.store.format import (
    MANIFEST_FILE,
    META_COLUMNS,
    SHARD_DIR,
    StoreError,
    encode_shard,
    progress_name,
    shard_name,
    store_dtype,
    write_bytes_atomic,
)
from radinterp.store.manifest import RankProgress, ShardEntry, init_or_check_manifest

log = logging.getLogger(__name__)

_N_KINDS = 5
"""Number of TokenKind values (not imported: radinterp.models pulls in transformers)."""


class StoreWriter:
    """Append-only writer for one rank of an activation store."""

    def __init__(
        self,
        root: str | Path,
        manifest: dict[str, Any],
        *,
        rank: int = 0,
        async_write: bool = True,
    ) -> None:
        self.root = Path(root)
        world_size = int(manifest["world_size"])
        if not 0 <= rank < world_size:
            raise StoreError(f"rank {rank} outside world_size {world_size}; pass 0 <= rank < world_size")
        (self.root / SHARD_DIR).mkdir(parents=True, exist_ok=True)
        self.manifest = init_or_check_manifest(self.root, manifest)
        self.rank = rank
        self.sites: list[str] = list(self.manifest["sites"])
        self.d_model: int = int(self.manifest["d_model"])
        self.dtype = store_dtype(self.manifest["dtype"])
        self.shard_bytes: int = int(self.manifest["shard_bytes"])
        self.progress = RankProgress.load(self.root, rank, world_size)
        self._check_committed()
        self._remove_orphans()
        self._remove_stale_temps()
        self._done = self.progress.done_studies()
        self._lock = threading.Lock()
        self._reset_buffer()
        self._next_index = self.progress.num_shards
        self._error: BaseException | None = None
        self._queue: queue.Queue | None = None
        self._thread: threading.Thread | None = None
        if async_write:
            self._queue = queue.Queue(maxsize=1)
            self._thread = threading.Thread(target=self._worker, name="store-writer", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ resume bookkeeping
    def _check_committed(self) -> None:
        for e in self.progress.entries:
            if e.file is None:
                continue
            path = self.root / e.file
            if not path.exists() or path.stat().st_size != e.bytes:
                raise StoreError(
                    f"committed shard {path} is missing or has the wrong size; the store is "
                    "damaged: restore the file or capture into a new --out folder"
                )

    def _remove_orphans(self) -> None:
        listed = {e.file for e in self.progress.entries if e.file}
        prefix = f"r{self.rank:05d}-"
        for path in sorted((self.root / SHARD_DIR).iterdir()):
            name = path.name.lstrip(".")
            if not name.startswith(prefix):
                continue
            rel = f"{SHARD_DIR}/{path.name}"
            if path.name.startswith(".") or rel not in listed:
                log.info("removing uncommitted shard %s left by an interrupted run", path)
                path.unlink()

    def _remove_stale_temps(self) -> None:
        """Delete temp files a kill -9 left mid-write of this rank's progress record (and, on
        rank 0, of the manifest): ``write_json_atomic`` names them ``.NAME.<random>.tmp``."""
        targets = [self.root / progress_name(self.rank)]
        if self.rank == 0:
            targets.append(self.root / MANIFEST_FILE)
        for target in targets:
            for path in sorted(target.parent.glob(f".{target.name}.*.tmp")):
                log.info("removing temp file %s left by an interrupted run", path)
                path.unlink(missing_ok=True)

    def is_done(self, study_id: str) -> bool:
        """True when the study is committed (written or skipped) in this rank's progress."""
        return study_id in self._done

    @property
    def num_rows(self) -> int:
        with self._lock:
            return self.progress.num_rows + self._buf_rows

    # ------------------------------------------------------------------ buffering
    def _reset_buffer(self) -> None:
        self._buf_acts: dict[str, list[torch.Tensor]] = {s: [] for s in self.sites}
        self._buf_meta: dict[str, list[np.ndarray]] = {c: [] for c in META_COLUMNS}
        self._buf_studies: list[str] = []
        self._buf_skipped: dict[str, str] = {}
        self._buf_rows = 0
        self._buf_bytes = 0

    def _new_id(self, study_id: str) -> None:
        if study_id in self._done or study_id in self._buf_studies or study_id in self._buf_skipped:
            raise StoreError(
                f"study id {study_id!r} was already written to this store; study ids must be "
                "unique (fix the data source) and finished studies must not be re-sent"
            )

    def append(
        self,
        study_ids: Sequence[str],
        acts: Mapping[str, torch.Tensor],
        meta: Mapping[str, np.ndarray],
    ) -> None:
        """Add rows of one or more whole studies.

        ``acts[site]`` is (N, d_model) for every store site; ``meta`` holds the
        ``META_COLUMNS`` arrays (N,), with ``study_index`` indexing ``study_ids`` and
        non-decreasing (rows grouped by study, studies in order). A study may have no rows.
        """
        self._raise_worker_error()
        if set(acts) != set(self.sites):
            raise StoreError(f"append got sites {sorted(acts)}, store has {self.sites}; "
                             "pass activations for exactly the store's sites")
        missing = [c for c in META_COLUMNS if c not in meta]
        if missing:
            raise StoreError(f"append is missing metadata columns {missing}")
        sidx = np.asarray(meta["study_index"], dtype=np.int64)  # (N,)
        n = sidx.shape[0]
        for site, a in acts.items():
            if a.ndim != 2 or a.shape != (n, self.d_model):
                raise StoreError(f"acts[{site!r}] has shape {tuple(a.shape)}, expected "
                                 f"({n}, {self.d_model}) to match the metadata and d_model")
        if n and (np.any(np.diff(sidx) < 0) or sidx[0] < 0 or sidx[-1] >= len(study_ids)):
            raise StoreError("meta['study_index'] must be sorted and index into study_ids")
        bounds = np.searchsorted(sidx, np.arange(len(study_ids) + 1))  # (S+1,)
        stored = {s: a.detach().to("cpu", self.dtype) for s, a in acts.items()}
        for i, sid in enumerate(study_ids):
            lo, hi = int(bounds[i]), int(bounds[i + 1])
            self._add_study(str(sid), {s: a[lo:hi] for s, a in stored.items()},
                            {c: np.asarray(meta[c])[lo:hi] for c in META_COLUMNS})

    def _add_study(self, sid: str, acts: dict[str, torch.Tensor], meta: dict[str, np.ndarray]) -> None:
        self._new_id(sid)
        k = len(self._buf_studies)
        self._buf_studies.append(sid)
        rows = int(meta["kind"].shape[0])
        for s in self.sites:
            self._buf_acts[s].append(acts[s])
        for c in META_COLUMNS:
            col = np.full(rows, k, np.int32) if c == "study_index" else meta[c]
            self._buf_meta[c].append(np.asarray(col, dtype=META_COLUMNS[c]))
        with self._lock:
            self._buf_rows += rows
        self._buf_bytes += rows * self.d_model * self.dtype.itemsize * len(self.sites)
        if self._buf_bytes >= self.shard_bytes:
            self.flush()

    def mark_skipped(self, study_id: str, reason: str) -> None:
        """Record a study that could not be captured; it is committed with the next shard."""
        self._raise_worker_error()
        self._new_id(study_id)
        self._buf_skipped[study_id] = reason

    # ------------------------------------------------------------------ committing
    def flush(self) -> None:
        """Commit everything buffered as one shard (no-op when nothing is buffered)."""
        self._raise_worker_error()
        if not self._buf_studies and not self._buf_skipped:
            return
        acts = {s: torch.cat(v) if v else torch.empty(0, self.d_model, dtype=self.dtype)
                for s, v in self._buf_acts.items()}
        meta = {c: np.concatenate(v) if v else np.empty(0, META_COLUMNS[c])
                for c, v in self._buf_meta.items()}
        job = (self._buf_rows > 0, self._next_index, acts, meta,
               list(self._buf_studies), dict(self._buf_skipped))
        if self._buf_rows > 0:
            self._next_index += 1
        with self._lock:
            self._reset_buffer()
        if self._queue is None:
            self._commit(*job)
        else:
            self._queue.put(job)

    def _commit(self, has_rows: bool, index: int, acts: dict[str, torch.Tensor],
                meta: dict[str, np.ndarray], studies: list[str], skipped: dict[str, str]) -> None:
        kind_counts = np.bincount(meta["kind"].astype(np.int64), minlength=_N_KINDS).tolist()
        rows = int(meta["kind"].shape[0])
        if has_rows:
            rel = shard_name(self.rank, index)
            data = encode_shard(acts, meta, studies)
            digest = hashlib.sha256(data).hexdigest()
            try:
                write_bytes_atomic(self.root / rel, data)
            except OSError as exc:
                raise StoreError(
                    f"could not write shard {self.root / rel}: {exc}. The store stays "
                    f"consistent up to its last committed shard; free disk space (or choose "
                    f"another --out) and rerun to resume"
                ) from exc
            entry = ShardEntry(rel, digest, len(data), rows, studies, skipped, kind_counts)
        else:
            entry = ShardEntry(None, None, 0, 0, studies, skipped, kind_counts)
        with self._lock:
            self.progress.entries.append(entry)
            self._done.update(studies)
            self._done.update(skipped)
        try:
            self.progress.save(self.root)
        except OSError as exc:
            with self._lock:
                self.progress.entries.pop()
            raise StoreError(f"could not update the progress record of {self.root}: {exc}; "
                             "free disk space and rerun to resume") from exc
        log.debug("committed %s (%d rows, %d studies, %d skipped)", entry.file, rows,
                  len(studies), len(skipped))

    def _worker(self) -> None:
        assert self._queue is not None
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    self._commit(*job)
            except BaseException as exc:  # surfaced in the caller's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        if self._queue is not None:
            self._queue.join()

    def close(self, complete: bool = True) -> None:
        """Commit the buffer, wait for pending shards, and mark the rank complete."""
        try:
            self.flush()
            self._drain()
            self._raise_worker_error()
            self.progress.complete = complete
            self.progress.save(self.root)
        finally:
            self._stop()

    def abort(self) -> None:
        """Drop the uncommitted buffer (it is recomputed on resume) and stop the worker."""
        try:
            self._drain()
        finally:
            self._reset_buffer()
            self._stop()

    def _stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
