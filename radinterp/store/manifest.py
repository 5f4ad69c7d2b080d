"""Store manifest (what was captured) and per-rank progress records (what is committed).

The manifest is written once, when the store is created, and never changes; appending to a
store checks that the new run captures the same thing. Each rank owns one progress file that
lists its committed shards in write order; a shard counts only once its entry is in that file,
so a crash at any point leaves a readable store and a rerun resumes at the first study not
committed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radinterp.config import write_json_atomic
from radinterp.store.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST_FILE,
    STORE_DTYPES,
    StoreError,
    progress_name,
)

log = logging.getLogger(__name__)

IDENTITY_KEYS = ("model", "sites", "dtype", "d_model", "token_filter", "world_size", "shard_bytes")
"""Manifest keys that must match for a run to append to (or resume) an existing store."""


def make_manifest(
    *,
    model: str,
    sites: list[str],
    dtype: str,
    d_model: int,
    token_filter: str,
    world_size: int = 1,
    shard_bytes: int = 256 << 20,
    config: dict[str, Any] | None = None,
    data: str | None = None,
    data_kind: str | None = None,
) -> dict[str, Any]:
    """Build a manifest dict, validating every field. ``data`` (an absolute path) and
    ``data_kind`` (a ``SOURCES`` name) record where the studies came from, so that
    ``Store.open_studies`` can reopen them."""
    if not sites:
        raise StoreError("a store needs at least one site, e.g. lm.blocks.15.resid_post")
    if len(set(sites)) != len(sites):
        raise StoreError(f"duplicate sites {sites}; list each site once")
    if dtype not in STORE_DTYPES:
        raise StoreError(f"unknown store dtype {dtype!r}; use one of {', '.join(STORE_DTYPES)}")
    if d_model <= 0:
        raise StoreError(f"d_model must be positive, got {d_model}")
    if world_size < 1:
        raise StoreError(f"world_size must be >= 1, got {world_size}")
    if shard_bytes < 1:
        raise StoreError(f"shard_bytes must be >= 1, got {shard_bytes}")
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": str(model),
        "sites": list(sites),
        "dtype": dtype,
        "d_model": int(d_model),
        "token_filter": token_filter,
        "world_size": int(world_size),
        "shard_bytes": int(shard_bytes),
        "config": config or {},
        "data": {"path": data, "kind": data_kind},
    }


def read_manifest(root: Path) -> dict[str, Any]:
    path = Path(root) / MANIFEST_FILE
    if not path.exists():
        raise StoreError(
            f"{root} is not an activation store (no {MANIFEST_FILE}); "
            "point at the --out folder of `radinterp capture`"
        )
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_NAME:
        raise StoreError(f"{path} is not a {FORMAT_NAME} manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise StoreError(
            f"{root} uses store format v{manifest['format_version']}, newer than this "
            f"radinterp (v{FORMAT_VERSION}); upgrade radinterp"
        )
    return manifest


def init_or_check_manifest(root: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Create the store's manifest, or check an existing one matches; returns the one on disk."""
    root = Path(root)
    path = root / MANIFEST_FILE
    if not path.exists():
        write_json_atomic(path, manifest)
        return manifest
    existing = read_manifest(root)
    clashes = [k for k in IDENTITY_KEYS if existing.get(k) != manifest.get(k)]
    if clashes:
        detail = "; ".join(f"{k}: store has {existing.get(k)!r}, run has {manifest.get(k)!r}"
                           for k in clashes)
        raise StoreError(
            f"cannot append to store {root}: it was written with different settings ({detail}). "
            "Use a new --out folder, or rerun with the store's settings"
        )
    old_cfg, new_cfg = existing.get("config", {}), manifest.get("config", {})
    changed = sorted(k for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k))
    if changed:
        log.warning("resuming store %s with changed config fields %s (store keeps its "
                    "original config)", root, changed)
    return existing


@dataclass
class ShardEntry:
    """One committed unit of a rank: a shard file (or none, when no rows) and its studies."""

    file: str | None
    """Shard path relative to the store root; None when the unit has no rows."""
    sha256: str | None
    """Hex sha256 of the shard file."""
    bytes: int
    """Shard file size in bytes."""
    rows: int
    """Number of activation rows (positions) in the shard."""
    studies: list[str]
    """Study ids whose rows are in this shard (including studies with zero kept rows)."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Study id -> reason, for studies skipped (missing / corrupt image) in this unit."""
    kind_counts: list[int] = field(default_factory=list)
    """Rows per TokenKind value (index = kind)."""


@dataclass
class RankProgress:
    """Everything rank ``rank`` has committed, in write order."""

    rank: int
    world_size: int
    entries: list[ShardEntry] = field(default_factory=list)
    complete: bool = False

    @property
    def num_rows(self) -> int:
        return sum(e.rows for e in self.entries)

    @property
    def num_shards(self) -> int:
        return sum(1 for e in self.entries if e.file is not None)

    def done_studies(self) -> set[str]:
        done: set[str] = set()
        for e in self.entries:
            done.update(e.studies)
            done.update(e.skipped)
        return done

    def skipped(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for e in self.entries:
            out.update(e.skipped)
        return out

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["num_rows"] = self.num_rows
        d["num_skipped"] = len(self.skipped())
        return d

    def save(self, root: Path) -> None:
        write_json_atomic(Path(root) / progress_name(self.rank), self.to_dict())

    @classmethod
    def load(cls, root: Path, rank: int, world_size: int) -> RankProgress:
        path = Path(root) / progress_name(rank)
        if not path.exists():
            return cls(rank=rank, world_size=world_size)
        d = json.loads(path.read_text())
        return cls(
            rank=d["rank"],
            world_size=d["world_size"],
            entries=[ShardEntry(**e) for e in d["entries"]],
            complete=d.get("complete", False),
        )
