"""Where training activations come from: a small protocol, an in-memory source, the store.

Any object with ``d_in``, ``iter_batches(...)``, ``num_tokens()`` and ``hold_out(n)`` can
feed the trainer. ``hold_out(n)`` reserves the last ``n`` rows for threshold calibration: it
returns a source of the other rows (the trainer never sees the reserved ones) and the
reserved rows as an (n, d_in) tensor. Sources may also offer ``locate_nonfinite() ->
list[str]`` (which shards hold NaN/inf) and ``describe() -> dict`` (provenance such as model
and site); the trainer uses them when present. ``StoreActivationSource`` wraps a
``radinterp.store`` store.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

log = logging.getLogger(__name__)

#: Cap of the default held-out slice (``TrainConfig.held_out_tokens=None``).
DEFAULT_HELD_OUT = 8192


@runtime_checkable
class ActivationSource(Protocol):
    """Minimal data interface of the trainer."""

    d_in: int

    def iter_batches(
        self, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, epoch: int = 0
    ) -> Iterator[torch.Tensor]:
        """One epoch of (batch_size, d_in) float32 batches for ``rank``; deterministic given
        the arguments and disjoint across ranks."""
        ...

    def num_tokens(self) -> int:
        """Total rows available per epoch (all ranks together)."""
        ...

    def hold_out(self, n_tokens: int) -> tuple[ActivationSource, torch.Tensor]:
        """(a source without the last ``n_tokens`` rows, those rows as (n_tokens, d_in))."""
        ...


class TensorActivationSource:
    """An in-memory (N, d_in) tensor as an activation source.

    Epoch ``e`` is a permutation seeded by ``(seed, e)``; global batch ``j`` holds permuted rows
    ``[j * B * W, (j + 1) * B * W)`` and rank ``r`` takes its ``r``-th slice of ``B`` rows, so a
    run with W ranks of batch B sees exactly the global batches of a 1-rank run of batch B * W.
    """

    def __init__(self, acts: torch.Tensor, *, name: str = "tensor", shuffle: bool = True) -> None:
        if acts.ndim != 2:
            raise ValueError(f"activations must be (N, d_in), got shape {tuple(acts.shape)}")
        self.acts = acts
        self.d_in = int(acts.shape[1])
        self.name = name
        self.shuffle = shuffle

    @classmethod
    def from_file(cls, path: str | Path, key: str = "activations") -> TensorActivationSource:
        """Load a ``.safetensors`` file holding one (N, d_in) tensor (``key`` if several)."""
        from safetensors.torch import load_file

        tensors = load_file(str(path))
        if key not in tensors:
            if len(tensors) != 1:
                raise ValueError(f"{path} holds {sorted(tensors)}; store the activations under "
                                 f"the key {key!r}")
            key = next(iter(tensors))
        return cls(tensors[key], name=str(path))

    def num_tokens(self) -> int:
        return int(self.acts.shape[0])

    def hold_out(self, n_tokens: int) -> tuple[TensorActivationSource, torch.Tensor]:
        """The last ``n_tokens`` rows as a tensor, and a source of the rows before them."""
        n = _check_hold_out(n_tokens, self.num_tokens())
        rest = TensorActivationSource(self.acts[:n], name=self.name, shuffle=self.shuffle)
        return rest, self.acts[n:].float()  # (n_tokens, d_in)

    def iter_batches(
        self, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, epoch: int = 0
    ) -> Iterator[torch.Tensor]:
        n = self.acts.shape[0]
        if self.shuffle:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        global_bs = batch_size * world_size
        for j in range(n // global_bs):
            lo = j * global_bs + rank * batch_size
            yield self.acts[order[lo : lo + batch_size]].float()  # (batch_size, d_in)

    def locate_nonfinite(self) -> list[str]:
        bad = (~torch.isfinite(self.acts)).any(dim=1).nonzero().squeeze(1)
        if not bad.numel():
            return []
        return [f"{self.name} rows {bad[:10].tolist()}{' ...' if bad.numel() > 10 else ''}"]

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "num_tokens": self.num_tokens()}


class StoreActivationSource:
    """One site of a ``radinterp.store`` store, with shard-level NaN/inf location."""

    def __init__(self, path: str | Path, site: str | None = None, **reader_kwargs: Any) -> None:
        from radinterp.store import open_store

        self.store = open_store(path)
        sites = self.store.sites
        if site is None:
            if len(sites) != 1:
                raise ValueError(f"store {path} holds sites {sites}; pick one with --site")
            site = sites[0]
        self.site = site
        if "block_rows" not in reader_kwargs:  # small stores: enough blocks to deal to ranks
            n = self.store.num_tokens(site, reader_kwargs.get("token_kinds"))
            reader_kwargs["block_rows"] = min(4096, max(256, n // 64))
        self.reader_kwargs = reader_kwargs
        self.inner = self.store.site_batches(site, **reader_kwargs)
        self.d_in = int(self.inner.d_in)

    def hold_out(self, n_tokens: int) -> tuple[StoreActivationSource, torch.Tensor]:
        """The last ``n_tokens`` rows of the store (of the selected token kinds, in row order:
        the last studies captured) as a tensor, and a source that stops before them."""
        from radinterp.store.reader import resolve_kinds

        _check_hold_out(n_tokens, self.num_tokens())
        kinds = resolve_kinds(self.reader_kwargs.get("token_kinds"))
        shards, held, need = list(self.store.shards), [], n_tokens
        while need:
            ref = shards[-1]
            kind = _kind_column(self.store, ref)  # (rows,)
            keep = np.ones(ref.rows, dtype=bool) if kinds is None else np.isin(kind, kinds)
            idx = np.nonzero(keep)[0][-need:]  # the last matching rows of this shard
            if idx.size:
                held.insert(0, self.store.get_rows(self.site, ref.row_offset + idx))
                need -= int(idx.size)
            cut = int(idx[0]) if idx.size else ref.rows  # rows [cut, rows) are held out
            if cut == 0 or need:
                shards.pop()
                continue
            counts = np.bincount(kind[:cut], minlength=len(ref.kind_counts))
            shards[-1] = dataclasses.replace(ref, rows=cut, kind_counts=tuple(counts.tolist()))
        rest = copy.copy(self)
        rest.store = self.store.head(shards)  # reads only the rows before the cut
        rest.inner = rest.store.site_batches(self.site, **self.reader_kwargs)
        return rest, torch.cat(held).float()  # (n_tokens, d_in)

    def num_tokens(self) -> int:
        return int(self.inner.num_tokens())

    def iter_batches(
        self, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, epoch: int = 0
    ) -> Iterator[torch.Tensor]:
        return self.inner.iter_batches(
            batch_size, rank=rank, world_size=world_size, seed=seed, epoch=epoch
        )

    def locate_nonfinite(self) -> list[str]:
        """Shard files of this site that hold NaN/inf values (reads every shard)."""
        bad = []
        for i, ref in enumerate(self.store.shards):
            acts = self.store.shard_acts(i, self.site)
            n_bad = int((~torch.isfinite(acts)).any(dim=1).sum())
            if n_bad:
                bad.append(f"{self.store.root / ref.file} ({n_bad} rows)")
        return bad

    def describe(self) -> dict[str, Any]:
        return {"source": str(self.store.root), "site": self.site,
                "model": self.store.manifest.get("model"), "num_tokens": self.num_tokens()}


def _kind_column(store: Any, ref: Any) -> np.ndarray:
    rows = np.arange(ref.row_offset, ref.row_offset + ref.rows)
    return store.metadata(rows)["kind"].astype(np.int64)


def _check_hold_out(n_tokens: int, n_total: int) -> int:
    """Rows left for training after holding out ``n_tokens``; refuses to leave none."""
    if not 0 < n_tokens < n_total:
        raise ValueError(f"cannot hold out {n_tokens} of {n_total} tokens for threshold "
                         f"calibration; pass --held-out-tokens between 1 and {n_total - 1}")
    return n_total - n_tokens


def default_held_out(n_total: int) -> int:
    """Held-out rows when not configured: a tenth of the source, at most DEFAULT_HELD_OUT."""
    return max(1, min(DEFAULT_HELD_OUT, n_total // 10))


def open_activation_source(
    path: str | Path, *, site: str | None = None, **reader_kwargs: Any
) -> ActivationSource:
    """An activation source for ``path``: a store folder, or a ``.safetensors`` tensor file."""
    path = Path(path)
    if path.is_file() and path.suffix == ".safetensors":
        return TensorActivationSource.from_file(path)
    if path.is_dir() and (path / "manifest.json").exists():
        return StoreActivationSource(path, site, **reader_kwargs)
    if path.is_dir():
        raise ValueError(f"{path} is not an activation store (no manifest.json); capture one "
                         f"with `radinterp capture`, or pass a .safetensors file of (N, d_in)")
    raise FileNotFoundError(f"activations {path} not found; pass a store folder or a "
                            f".safetensors file holding an (N, d_in) tensor")
