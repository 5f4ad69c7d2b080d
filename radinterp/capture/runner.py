"""The capture runner: studies -> model forward (once for all sites) -> activation store.

Each rank takes studies ``rank::world_size`` of the source (after ``max_studies``) and writes
its own shards. Batches are fixed chunks of the rank's study list, so a resumed run recomputes
a half-committed batch with exactly the same companions (same padding, same numerics) and
writes only its uncommitted studies: the final store is identical to an uninterrupted run.

With ``generate`` the model first writes its report for the chunk (greedy, left-padded, one
``radinterp.generation.generate`` call), then prompt + generated tokens go through the same
single teacher-forced forward, so generated positions are stored as GENERATED rows.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radinterp.capture.config import CaptureConfig
from radinterp.capture.filters import apply_filter
from radinterp.data.sources import SourceError, detect_source, image_problem, open_studies
from radinterp.data.study import Study
from radinterp.devices import resolve_device
from radinterp.store import StoreWriter, make_manifest, read_manifest
from radinterp.store.manifest import RankProgress
from radinterp.store.format import MANIFEST_FILE, StoreError

log = logging.getLogger(__name__)

_LM_FAMILIES = ("lm_resid_post", "lm_resid_pre")


@dataclass
class CaptureResult:
    """What one rank did."""

    out: Path
    rank: int
    world_size: int
    studies_in_slice: int = 0
    studies_already_done: int = 0
    studies_captured: int = 0
    studies_skipped: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    rows_written: int = 0
    tokens_forwarded: int = 0
    seconds: float = 0.0


def dist_env(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """Rank / world size from arguments, torch.distributed, or torchrun / accelerate env vars."""
    if rank is not None and world_size is not None:
        return rank, world_size
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _maybe_init_process_group(world_size: int) -> bool:
    dist = torch.distributed
    if world_size < 2 or not dist.is_available() or dist.is_initialized():
        return False
    if "MASTER_ADDR" not in os.environ:
        return False
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def load_capture_adapter(cfg: CaptureConfig, device: torch.device) -> Any:
    from radinterp.models import load_adapter, load_options, resolve_adapter

    if cfg.model_dtype is not None:
        dtype = getattr(torch, cfg.model_dtype)
    else:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"device": str(device), "dtype": dtype}
    if cfg.trust_remote_code:
        kwargs["trust_remote_code"] = True
    if cfg.image_size is not None:
        kwargs["image_size"] = cfg.image_size
    if "seed" in load_options(resolve_adapter(cfg.model)[0]):  # only random-weight adapters
        kwargs["seed"] = cfg.seed
    return load_adapter(cfg.model, **kwargs)


def check_sites(adapter: Any, sites: list[str]) -> int:
    """Validate sites against the model; return their common width (d_model)."""
    from radinterp.models.sites import parse_site

    dims = set()
    for name in sites:
        site = parse_site(name)
        if site.family not in _LM_FAMILIES:
            raise ValueError(f"capture stores one row per language-model position; site {name!r} "
                             "is not one: use lm.blocks.{i}.resid_post or lm.blocks.{i}.resid_pre")
        adapter.resolve(site)  # raises, naming the valid layer range
        dims.add(adapter.site_dim(name))
    if len(dims) != 1:
        raise ValueError(f"sites {sites} have different widths {sorted(dims)}; capture them separately")
    return dims.pop()


def _select_studies(cfg: CaptureConfig) -> list[Study]:
    studies = list(itertools.islice(open_studies(cfg.data, cfg.data_kind), cfg.max_studies))
    seen: set[str] = set()
    for s in studies:
        if s.study_id in seen:
            raise SourceError(f"study id {s.study_id!r} appears twice in {cfg.data}; ids must be unique")
        seen.add(s.study_id)
    return studies


def _generation_settings(config: dict[str, Any]) -> dict[str, Any]:
    gen = bool(config.get("generate", False))
    return {"generate": gen, "max_new_tokens": config.get("max_new_tokens") if gen else None}


def _check_same_generation(out: Path, cfg: CaptureConfig) -> None:
    """A store holds teacher-forced or generated continuations, never a mix of the two."""
    if not (out / MANIFEST_FILE).exists():
        return
    have = _generation_settings(read_manifest(out).get("config", {}))
    want = _generation_settings(cfg.to_dict())
    if have != want:
        raise StoreError(f"store {out} was captured with {have}, this run asks for {want}; use a new "
                         "--out folder, or --overwrite to replace the store")


def _store_complete(out: Path, cfg: CaptureConfig, world_size: int, studies: list[Study]) -> bool:
    """True when a store with these settings already holds every study (all ranks): the rerun
    is a no-op and loads no model. Every rank reads the same files, so all decide alike."""
    if not (out / MANIFEST_FILE).exists():
        return False
    m = read_manifest(out)
    want = {"model": cfg.model, "sites": cfg.sites, "dtype": cfg.dtype, "world_size": world_size,
            "token_filter": cfg.token_filter, "shard_bytes": cfg.shard_bytes}
    if any(m.get(k) != v for k, v in want.items()):
        return False  # the writer raises the precise mismatch error
    for r in range(world_size):
        progress = RankProgress.load(out, r, world_size)
        done = progress.done_studies()
        if not progress.complete or any(s.study_id not in done for s in studies[r::world_size]):
            return False
    return True


def run_capture(
    cfg: CaptureConfig,
    *,
    adapter: Any = None,
    rank: int | None = None,
    world_size: int | None = None,
    overwrite: bool = False,
) -> CaptureResult:
    """Capture ``cfg.sites`` over the studies of ``cfg.data`` into the store ``cfg.out``."""
    rank, world_size = dist_env(rank, world_size)
    own_group = _maybe_init_process_group(world_size)
    try:
        return _run(cfg, adapter, rank, world_size, overwrite)
    finally:
        if own_group:
            torch.distributed.destroy_process_group()


def _run(cfg: CaptureConfig, adapter: Any, rank: int, world_size: int, overwrite: bool) -> CaptureResult:
    t0 = time.perf_counter()
    out = Path(cfg.out)
    if overwrite and rank == 0 and out.exists():
        if not (out / MANIFEST_FILE).exists():
            raise StoreError(f"--overwrite refuses to delete {out}: it is not an activation store")
        shutil.rmtree(out)
    _barrier()
    _check_same_generation(out, cfg)
    studies = _select_studies(cfg)  # before loading the model: bad data fails fast
    if _store_complete(out, cfg, world_size, studies):
        log.info("%s already holds every study with these settings; nothing to do", out)
        n = len(studies[rank::world_size])
        return CaptureResult(out, rank, world_size, studies_in_slice=n, studies_already_done=n)
    device = resolve_device(cfg.device)
    adapter = adapter or load_capture_adapter(cfg, device)
    d_model = check_sites(adapter, cfg.sites)
    manifest = make_manifest(
        model=cfg.model, sites=cfg.sites, dtype=cfg.dtype, d_model=d_model,
        token_filter=cfg.token_filter, world_size=world_size, shard_bytes=cfg.shard_bytes,
        config={**cfg.to_dict(), "adapter": adapter.describe()},
        data=str(Path(cfg.data).resolve()), data_kind=cfg.data_kind or detect_source(cfg.data),
    )
    if rank != 0:
        _barrier()  # rank 0 creates the manifest first
    writer = StoreWriter(out, manifest, rank=rank)
    if rank == 0:
        _barrier()
    mine = studies[rank::world_size]
    res = CaptureResult(out, rank, world_size, studies_in_slice=len(mine))
    res.studies_already_done = sum(writer.is_done(s.study_id) for s in mine)
    if res.studies_already_done:
        log.info("rank %d: resuming, %d of %d studies already in the store", rank,
                 res.studies_already_done, len(mine))
    from tqdm.auto import tqdm

    bar = tqdm(total=len(mine), initial=res.studies_already_done, unit="study",
               disable=not cfg.progress, desc=f"capture r{rank}")
    with writer, bar:
        for k in range(0, len(mine), cfg.batch_size):
            chunk = mine[k : k + cfg.batch_size]
            if all(writer.is_done(s.study_id) for s in chunk):
                continue
            bar.update(_capture_chunk(cfg, adapter, writer, chunk, res))
    res.seconds = time.perf_counter() - t0
    if res.studies_skipped:
        log.warning("rank %d: skipped %d studies (see the store's progress record): %s", rank,
                    res.studies_skipped, "; ".join(f"{k}: {v}" for k, v in
                                                   itertools.islice(res.skipped.items(), 5)))
    log.info("rank %d: captured %d studies, %d rows into %s in %.1fs", rank,
             res.studies_captured, res.rows_written, out, res.seconds)
    _barrier()
    return res


@torch.inference_mode()
def _capture_chunk(cfg: CaptureConfig, adapter: Any, writer: StoreWriter, chunk: list[Study],
                   res: CaptureResult) -> int:
    """Forward the chunk's loadable studies once; write (or skip) its uncommitted ones."""
    from radinterp.hooks import capture

    problems = {s.study_id: image_problem(s) for s in chunk}
    good = [s for s in chunk if problems[s.study_id] is None]
    items = [adapter.build_inputs(s, with_report=cfg.with_report and bool(s.report)) for s in good]
    if items and cfg.generate:  # the model writes first; one teacher-forced pass records it all
        from radinterp.generation import DecodeConfig, generate

        items = generate(adapter, items, DecodeConfig(max_new_tokens=cfg.max_new_tokens)).inputs()
    rows: dict[str, tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]] = {}
    if items:
        batch = adapter.collate(items, padding_side="right")
        with capture(adapter, cfg.sites, stop_early=True) as acts:
            adapter.model(**adapter.to_device(batch))
        res.tokens_forwarded += int(sum(batch.lengths))
        for b, sid in enumerate(batch.study_ids):
            if writer.is_done(sid):
                continue
            rows[sid] = _extract(acts, batch, b, cfg.token_filter)
    n_new = 0
    for s in chunk:  # in study order, so shard contents do not depend on the batching
        sid = s.study_id
        if writer.is_done(sid):
            continue
        n_new += 1
        if problems[sid] is not None:
            log.warning("skipping study %s: %s", sid, problems[sid])
            writer.mark_skipped(sid, problems[sid])
            res.skipped[sid] = problems[sid]
            res.studies_skipped += 1
            continue
        site_acts, meta = rows[sid]
        writer.append([sid], site_acts, meta)
        res.studies_captured += 1
        res.rows_written += int(meta["kind"].shape[0])
    return n_new


def _extract(acts: dict[str, torch.Tensor], batch: Any, b: int, token_filter: str
             ) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Rows of sequence b kept by the filter: per-site (n, d_model) and metadata columns."""
    layout = batch.layouts[b]
    offset = batch.offsets[b] if batch.offsets else 0
    pos = apply_filter(token_filter, layout)  # (n,) positions within the sequence
    cols = torch.from_numpy(pos + offset)
    site_acts = {}
    for site, a in acts.items():  # a: (B, T, d_model)
        site_acts[site] = a[b].index_select(0, cols.to(a.device))  # (n, d_model)
    meta = {
        "study_index": np.zeros(len(pos), np.int32),
        "position": pos.astype(np.int32),
        "token_id": batch.input_ids[b, cols].numpy().astype(np.int32),
        "kind": layout.kind[pos],
        "image_slot": layout.image_slot[pos],
        "patch_row": layout.patch_row[pos],
        "patch_col": layout.patch_col[pos],
        "field": layout.field[pos],
    }
    return site_acts, meta
