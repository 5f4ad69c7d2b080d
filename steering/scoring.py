"""Teacher-forced scoring: log-probabilities of a continuation after a prompt, optionally under
edits (feature selection by effect; perplexity of a steered report under the unsteered model),
and running many steering arms in one batch (:func:`segmented`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from radinterp.edits import EditContext, EditFn
from radinterp.hooks import edit


def with_continuation(prompt, ids: torch.Tensor):
    """``prompt`` (ModelInputs) followed by ``ids`` (n,), tagged as generated positions."""
    return dataclasses.replace(prompt, input_ids=torch.cat([prompt.input_ids, ids.long()]),
                               layout=prompt.layout.with_generated(len(ids)))


@torch.no_grad()
def continuation_logprobs(adapter, prompts: Sequence, continuations: Sequence[torch.Tensor], *,
                          edits: dict[str, EditFn] | None = None, batch_size: int = 16) -> list[torch.Tensor]:
    """Per row, the (n,) log-probabilities of ``continuations[i]`` after ``prompts[i]``
    (ModelInputs), one right-padded teacher-forced forward per ``batch_size`` rows."""
    out: list[torch.Tensor] = []
    for lo in range(0, len(prompts), batch_size):
        items = [with_continuation(p, c) for p, c in zip(prompts[lo:lo + batch_size], continuations[lo:lo + batch_size])]
        batch = adapter.collate(items)
        hooks = edit(adapter, edits, batch=batch) if edits else _null()
        with hooks:
            logits = adapter.model(**adapter.to_device(batch)).logits.float().cpu()  # (B, T, V)
        logp = logits.log_softmax(-1)
        for b, (p, c) in enumerate(zip(prompts[lo:lo + batch_size], continuations[lo:lo + batch_size])):
            n0 = len(p.input_ids)
            idx = torch.arange(n0 - 1, n0 - 1 + len(c))  # the position predicting each token
            out.append(logp[b, idx, c.long()])
    return out


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return None


def segmented(parts: Sequence[tuple[int, EditFn | None]]) -> EditFn:
    """One edit for a batch whose rows come in segments, each with its own edit (or none):
    ``parts`` = [(n_rows, fn), ...] in row order. Each fn sees its rows and their layouts."""
    bounds, lo = [], 0
    for n, fn in parts:
        bounds.append((lo, lo + n, fn))
        lo += n

    def apply(h: torch.Tensor, ctx: EditContext) -> torch.Tensor | None:  # h: (B, T, d)
        k = max(1, h.shape[0] // lo)  # sequences per study when sampling several
        pieces, changed = [], False
        for a, b, fn in bounds:
            sub = h[a * k:b * k]
            new = None
            if fn is not None:
                sctx = ctx if ctx.layouts is None else dataclasses.replace(
                    ctx, layouts=ctx.layouts[a * k:b * k], offsets=ctx.offsets[a * k:b * k] if ctx.offsets else None)
                new = fn(sub, sctx)
            changed |= new is not None
            pieces.append(sub if new is None else new)
        return torch.cat(pieces) if changed else None

    return apply
