"""On-disk layout of an activation store: names, column dtypes, shard encode / decode.

A store is a folder::

    ACTS/
      manifest.json                      model, sites, dtype, d_model, token filter, config
      progress/rank00000.json            per-rank index: committed shards (sha256, rows,
                                         studies) and skipped studies, in write order
      shards/r00000-s000000.safetensors  one shard: every site + the row metadata columns

Each shard is a plain safetensors file holding ``acts.<site>`` (N, d_model) in the store
dtype for every site, plus one (N,) column per metadata field below; the shard's study ids
live in the safetensors header under a single ``radinterp`` key (JSON). One key only: the
safetensors writer emits header metadata in hash order, which differs between processes, and
a store must be byte-identical whoever writes it. See ``docs/store_format.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as st_save

FORMAT_NAME = "radinterp-activations"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
PROGRESS_DIR = "progress"
SHARD_DIR = "shards"
HEADER_KEY = "radinterp"
ACTS_PREFIX = "acts."

META_COLUMNS: dict[str, np.dtype] = {
    "study_index": np.dtype(np.int32),  # index into the shard's study id list
    "position": np.dtype(np.int32),  # position in the model's input sequence
    "token_id": np.dtype(np.int32),
    "kind": np.dtype(np.int8),  # TokenKind
    "image_slot": np.dtype(np.int8),  # ImageSlot, -1 when not an image token
    "patch_row": np.dtype(np.int16),  # -1 when not an image token
    "patch_col": np.dtype(np.int16),
    "field": np.dtype(np.int8),  # PromptField, -1 when not prompt content
}
"""Per-row metadata columns and their on-disk dtypes (one value per captured position)."""

STORE_DTYPES: dict[str, torch.dtype] = {
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float32": torch.float32,
}

_ST_DTYPES: dict[str, tuple[np.dtype, torch.dtype | None]] = {
    # safetensors dtype -> (numpy dtype to read the raw bytes, torch view dtype if needed)
    "BF16": (np.dtype(np.int16), torch.bfloat16),
    "F16": (np.dtype(np.float16), None),
    "F32": (np.dtype(np.float32), None),
    "F64": (np.dtype(np.float64), None),
    "I8": (np.dtype(np.int8), None),
    "U8": (np.dtype(np.uint8), None),
    "I16": (np.dtype(np.int16), None),
    "I32": (np.dtype(np.int32), None),
    "I64": (np.dtype(np.int64), None),
}


class StoreError(RuntimeError):
    """A store that cannot be read or appended to; the message names the fix."""


def acts_key(site: str) -> str:
    return ACTS_PREFIX + site


def shard_name(rank: int, index: int) -> str:
    return f"{SHARD_DIR}/r{rank:05d}-s{index:06d}.safetensors"


def progress_name(rank: int) -> str:
    return f"{PROGRESS_DIR}/rank{rank:05d}.json"


def store_dtype(name: str) -> torch.dtype:
    try:
        return STORE_DTYPES[name]
    except KeyError:
        raise StoreError(
            f"unknown store dtype {name!r}; use one of {', '.join(STORE_DTYPES)}"
        ) from None


def encode_shard(
    acts: dict[str, torch.Tensor], meta: dict[str, np.ndarray], study_ids: list[str]
) -> bytes:
    """Serialize one shard to safetensors bytes (deterministic for equal inputs)."""
    tensors: dict[str, torch.Tensor] = {acts_key(s): a.contiguous() for s, a in acts.items()}
    for name, dtype in META_COLUMNS.items():
        tensors[name] = torch.from_numpy(np.ascontiguousarray(meta[name], dtype=dtype))
    header = json.dumps({"study_ids": study_ids}, separators=(",", ":"))
    return st_save(tensors, metadata={HEADER_KEY: header})


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via temp file + fsync + rename; never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass
class _TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int


class ShardFile:
    """Random access to rows of a safetensors shard with plain reads (no mmap).

    Plain ``pread`` keeps resident memory to what the caller asked for, whatever the shard
    size; mmap would count every touched page of the file against the reader's RSS.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self._fh = open(self.path, "rb")
        except FileNotFoundError:
            raise StoreError(
                f"shard {self.path} is listed in the store index but missing; "
                "rerun the capture with the same --out to rewrite it"
            ) from None
        try:
            (n,) = struct.unpack("<Q", self._fh.read(8))
            header = json.loads(self._fh.read(n))
        except (struct.error, json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._fh.close()
            raise StoreError(f"shard {self.path} has a corrupt header ({exc})") from None
        meta = header.pop("__metadata__", {}) or {}
        self.info = json.loads(meta.get(HEADER_KEY, "{}"))
        base = 8 + n
        self.tensors = {
            k: _TensorInfo(v["dtype"], tuple(v["shape"]), base + v["data_offsets"][0],
                           base + v["data_offsets"][1])
            for k, v in header.items()
        }

    @property
    def study_ids(self) -> list[str]:
        return list(self.info.get("study_ids", []))

    def num_rows(self) -> int:
        return self.tensors["kind"].shape[0]

    def read_numpy(
        self, name: str, start: int = 0, stop: int | None = None, out: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows [start, stop) of tensor ``name`` as a numpy array (BF16 comes back as int16).

        With ``out`` (at least stop - start rows of the raw dtype) the rows are read into it
        and a view is returned: no allocation per read.
        """
        t = self.tensors[name]
        np_dtype, _ = _ST_DTYPES[t.dtype]
        stop = t.shape[0] if stop is None else min(stop, t.shape[0])
        row_bytes = int(np.prod(t.shape[1:], dtype=np.int64)) * np_dtype.itemsize
        n = max(stop - start, 0)
        if out is None:
            out = np.empty((n, *t.shape[1:]), dtype=np_dtype)
        else:
            out = out[:n]
        if out.size:
            self._fh.seek(t.start + start * row_bytes)
            got = self._fh.readinto(memoryview(out).cast("B"))
            if got != out.nbytes:
                raise StoreError(
                    f"shard {self.path} is truncated; verify the store (store.verify()) "
                    "and rerun the capture to rewrite damaged shards"
                )
        return out

    def raw_dtype(self, name: str) -> tuple[np.dtype, torch.dtype | None]:
        """(numpy dtype the bytes are read as, torch dtype to view them as, or None)."""
        return _ST_DTYPES[self.tensors[name].dtype]

    def read_torch(self, name: str, start: int = 0, stop: int | None = None) -> torch.Tensor:
        arr = self.read_numpy(name, start, stop)
        _, view = _ST_DTYPES[self.tensors[name].dtype]
        t = torch.from_numpy(arr)
        return t.view(view) if view is not None else t

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> ShardFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
