"""Fixed-size batches from a stream of row chunks: a bounded shuffle buffer, or plain order."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


def shuffle_batches(
    chunks: Iterable[torch.Tensor],
    capacity: int,
    batch_size: int,
    generator: torch.Generator,
    drop_last: bool = True,
) -> Iterator[torch.Tensor]:
    """Mix rows through a buffer of ``capacity`` rows and yield (batch_size, d) batches.

    The buffer fills up; once full, a random half of it (a whole number of batches, at least
    one) is emitted and its slots refilled from the stream. Memory is ``capacity`` rows plus
    one incoming chunk, whatever the length of the stream. Each row is emitted exactly once.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if capacity < batch_size:
        raise ValueError(
            f"shuffle buffer of {capacity} tokens is smaller than a batch ({batch_size}); "
            "raise shuffle_buffer_tokens to at least 2 x batch_size"
        )
    n_out = max(batch_size, (capacity // 2) // batch_size * batch_size)
    buf: torch.Tensor | None = None  # (capacity, d)
    free = torch.arange(capacity)  # free[:n_free] are empty slots
    n_free = capacity
    for x in chunks:  # (m, d)
        if buf is None:
            buf = torch.empty(capacity, x.shape[1], dtype=x.dtype)
        pos, m = 0, x.shape[0]
        while pos < m:
            k = min(n_free, m - pos)
            buf[free[n_free - k : n_free]] = x[pos : pos + k]
            n_free -= k
            pos += k
            if n_free == 0:
                out = torch.randperm(capacity, generator=generator)[:n_out]
                for i in range(0, n_out, batch_size):
                    yield buf[out[i : i + batch_size]]  # (B, d), a copy
                free, n_free = out, n_out
    if buf is None:
        return
    occupied = torch.ones(capacity, dtype=torch.bool)
    occupied[free[:n_free]] = False
    rest = occupied.nonzero().squeeze(1)
    rest = rest[torch.randperm(rest.shape[0], generator=generator)]
    yield from _cut(buf, rest, batch_size, drop_last)


def _cut(buf: torch.Tensor, idx: torch.Tensor, batch_size: int, drop_last: bool) -> Iterator[torch.Tensor]:
    n = idx.shape[0]
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        yield buf[idx[i : i + batch_size]]


def sequential_batches(
    chunks: Iterable[torch.Tensor], batch_size: int, drop_last: bool = True
) -> Iterator[torch.Tensor]:
    """Yield (batch_size, d) batches in stream order, carrying remainders across chunks."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    carry: torch.Tensor | None = None
    for x in chunks:
        if carry is not None and carry.shape[0]:
            x = torch.cat([carry, x])
        n_full = x.shape[0] // batch_size * batch_size
        for i in range(0, n_full, batch_size):
            yield x[i : i + batch_size]
        carry = x[n_full:]
    if carry is not None and carry.shape[0] and not drop_last:
        yield carry
