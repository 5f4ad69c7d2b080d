"""Block plans for the training reader, and ``SiteBatches``, one store site served to SAE trainers."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from radinterp.store.kinds import KindsArg, resolve_kinds

if TYPE_CHECKING:
    from radinterp.store.reader import Store


@dataclass
class BlockPlan:
    """Which (shard index, row start, row stop) blocks each rank reads, in order."""

    blocks: list[list[tuple[int, int, int]]]
    """blocks[rank] -> that rank's blocks in reading order."""
    rows_per_rank: list[int]
    """Rows each rank will read after the token-kind filter."""


def plan_blocks(
    store: Store,
    kinds: np.ndarray | None,
    block_rows: int,
    seed: int,
    epoch: int,
    world_size: int,
    shuffle: bool = True,
) -> BlockPlan:
    """Cut shards into blocks, shuffle their order with (seed, epoch), deal them to ranks."""
    if block_rows < 1:
        raise ValueError(f"block_rows must be >= 1, got {block_rows}")
    blocks = [(i, lo, min(lo + block_rows, s.rows))
              for i, s in enumerate(store.shards) for lo in range(0, s.rows, block_rows)]
    if shuffle:
        order = np.random.default_rng([seed, epoch]).permutation(len(blocks))
        blocks = [blocks[j] for j in order]
    per_rank = [blocks[r::world_size] for r in range(world_size)]
    if kinds is None:
        rows = [sum(hi - lo for _, lo, hi in b) for b in per_rank]
    elif world_size == 1:
        rows = [sum(s.count(kinds) for s in store.shards)]
    else:  # per-block filtered counts need the kind column (1 byte per row)
        kind_cols = {i: store._shard(s).read_numpy("kind") for i, s in enumerate(store.shards)}
        rows = [sum(int(np.isin(kind_cols[i][lo:hi], kinds).sum()) for i, lo, hi in b)
                for b in per_rank]
    return BlockPlan(per_rank, rows)


class SiteBatches:
    """One site of a store as the SAE trainer's data source.

    Implements the protocol ``iter_batches(batch_size, *, rank, world_size, seed, epoch)``,
    ``num_tokens()`` and ``d_in``; ``sae_lens_provider`` turns it into the endless iterator
    sae-lens's ``SAETrainer`` takes as ``data_provider``.
    """

    def __init__(
        self,
        store: Store,
        site: str,
        *,
        shuffle_buffer_tokens: int = 1 << 18,
        token_kinds: KindsArg = None,
        block_rows: int = 4096,
        drop_last: bool = True,
    ) -> None:
        self.store = store
        self.site = site
        self.shuffle_buffer_tokens = shuffle_buffer_tokens
        self.token_kinds = None if token_kinds is None else list(token_kinds)
        self.block_rows = block_rows
        self.drop_last = drop_last
        resolve_kinds(self.token_kinds)  # validate early

    @property
    def d_in(self) -> int:
        return self.store.d_model

    def num_tokens(self) -> int:
        return self.store.num_tokens(self.site, self.token_kinds)

    def iter_batches(
        self, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0, epoch: int = 0
    ) -> Iterator[torch.Tensor]:
        """One epoch of (batch_size, d_in) float32 batches for this rank."""
        return self.store.reader(
            self.site, batch_size, shuffle_buffer_tokens=self.shuffle_buffer_tokens, seed=seed,
            token_kinds=self.token_kinds, rank=rank, world_size=world_size, epoch=epoch,
            drop_last=self.drop_last, block_rows=self.block_rows,
        )

    def sae_lens_provider(
        self,
        batch_size: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> Iterator[torch.Tensor]:
        """Endless batches over successive epochs (sae-lens ``DataProvider``)."""
        for epoch in itertools.count():
            empty = True
            for batch in self.iter_batches(batch_size, rank=rank, world_size=world_size,
                                           seed=seed, epoch=epoch):
                empty = False
                yield batch if device is None else batch.to(device)
            if empty:
                raise ValueError(
                    f"store {self.store.root} has fewer than {batch_size} tokens of site "
                    f"{self.site} for rank {rank}; lower the batch size or capture more studies"
                )
