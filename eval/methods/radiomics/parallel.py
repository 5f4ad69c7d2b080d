"""Radiomic extraction over worker processes (spawn-safe, order-preserving, bounded memory).

Work is cut into chunks of ``chunk`` images; at most ``2 * workers`` chunks are in flight, so a
long image stream never sits in memory at once. ``workers=1`` runs in this process (no pool).
Workers are started with the ``spawn`` method (safe with torch and threads in the parent) and
pinned to one BLAS / OpenMP thread each, so N workers do not fight over N cores.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
from tqdm import tqdm

from eval.methods.radiomics.features import ExtractSettings, extract_image, feature_names

Job = tuple[np.ndarray, np.ndarray]
"""(image (H, W) on 0-255, region mask (H, W) bool)."""


def _init_worker() -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    try:
        import threadpoolctl

        threadpoolctl.threadpool_limits(1)
    except ImportError:  # optional: env vars above already cover fresh BLAS pools
        pass


def _run_chunk(jobs: list[Job], settings: ExtractSettings) -> np.ndarray:
    """(len(jobs), n_features) features of one chunk (runs in a worker)."""
    return np.stack([extract_image(im, m, settings) for im, m in jobs])


def _chunks(jobs: Iterable[Job], size: int) -> Iterator[list[Job]]:
    buf: list[Job] = []
    for j in jobs:
        buf.append(j)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def make_pool(workers: int) -> ProcessPoolExecutor:
    """A spawn-started pool of ``workers`` single-threaded processes (reusable across calls)."""
    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker)


def extract_many(jobs: Iterable[Job], settings: ExtractSettings, workers: int = 1,
                 chunk: int = 8, total: int | None = None, progress: bool = True,
                 desc: str = "radiomics", pool: ProcessPoolExecutor | None = None) -> np.ndarray:
    """(n_jobs, n_features) float64 features of every job, in input order; the same numbers for
    any ``workers`` (each image is measured by the same code alone). ``pool``: a started
    :func:`make_pool` to reuse (else one is started and shut down here when ``workers > 1``)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}; pass --workers 1 or more")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    n_feat = len(feature_names(settings))
    out: list[np.ndarray] = []
    bar = tqdm(total=total, desc=desc, unit="img", disable=not progress)
    try:
        if workers == 1:
            for c in _chunks(jobs, chunk):
                out.append(_run_chunk(c, settings))
                bar.update(len(c))
        else:
            own = pool is None
            pool = make_pool(workers) if own else pool
            try:
                pending: deque[Future] = deque()
                for c in _chunks(jobs, chunk):
                    pending.append(pool.submit(_run_chunk, c, settings))
                    while len(pending) >= 2 * workers:
                        res = pending.popleft().result()
                        out.append(res)
                        bar.update(len(res))
                while pending:
                    res = pending.popleft().result()
                    out.append(res)
                    bar.update(len(res))
            finally:
                if own:
                    pool.shutdown(cancel_futures=True)
    finally:
        bar.close()
    return np.concatenate(out) if out else np.zeros((0, n_feat))
