"""``steer(adapter, ...)``: a context manager around any generation (a notebook's entry point).

    with steer(adapter, "add", sae=sae, feature=123, coef=1.0, where="image", studies=studies):
        adapter.generate(studies)          # or generate(...), or a teacher-forced forward

    with steer(adapter, "prompt", finding="Pleural Effusion", stats=stats):
        adapter.generate(studies)          # the same studies, the finding named in the indication

The edits run through :func:`radinterp.hooks.edit`. Inside the block the batches the adapter
collates are recorded, so an edit that selects image or prompt positions knows each row's token
layout whatever generation path is used; pass ``batch=`` when the batch was collated before the
block. ``prompt`` rewrites the studies the adapter encodes inside the block. Everything is undone
in ``finally``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from radinterp.edits import EditContext, EditFn
from radinterp.hooks import edit
from steering.methods import Resources, Steering, SteerSpec, build


class _BatchRecorder:
    """Keeps the last batch ``adapter.collate`` built while installed."""

    def __init__(self, adapter, batch=None) -> None:
        self.adapter, self.batch = adapter, batch

    def __enter__(self) -> _BatchRecorder:
        original = self.adapter.collate

        def collate(items, *args, **kwargs):
            self.batch = original(items, *args, **kwargs)
            return self.batch

        self.adapter.collate = collate  # instance attribute: shadows the method until removed
        return self

    def __exit__(self, *exc) -> None:
        self.adapter.__dict__.pop("collate", None)

    def with_layouts(self, fn: EditFn) -> EditFn:
        """``fn`` seeing the recorded batch's layouts when its context has none."""

        def wrapped(h, ctx: EditContext):
            if ctx.layouts is None and self.batch is not None and ctx.columns is not None:
                k = max(1, h.shape[0] // len(self.batch.layouts))
                layouts = tuple(lay for lay in self.batch.layouts for _ in range(k))
                offsets = tuple(o for o in (self.batch.offsets or [0] * len(layouts)) for _ in range(k))
                n_prompt = int(self.batch.input_ids.shape[1])
                step = None
                if int(ctx.columns[-1]) >= n_prompt:
                    step = int(ctx.columns[-1]) - n_prompt
                ctx = dataclasses.replace(ctx, layouts=layouts, offsets=offsets, n_prompt=n_prompt, step=step)
            return fn(h, ctx)

        return wrapped


class _PromptRewrite:
    """Rewrites each study the adapter encodes while installed."""

    def __init__(self, adapter, rewrite) -> None:
        self.adapter, self.rewrite = adapter, rewrite

    def __enter__(self) -> None:
        original = self.adapter.encode_prompt
        self.adapter.encode_prompt = lambda study, **kw: original(self.rewrite(study), **kw)

    def __exit__(self, *exc) -> None:
        self.adapter.__dict__.pop("encode_prompt", None)


@contextmanager
def apply(adapter, steering: Steering, *, batch=None) -> Iterator[Steering]:
    """Install a built :class:`Steering` for the block (edits, prompt rewrite)."""
    with ExitStack() as stack:
        if steering.rewrite is not None:
            stack.enter_context(_PromptRewrite(adapter, steering.rewrite))
        if steering.edits:
            rec = stack.enter_context(_BatchRecorder(adapter, batch))
            edits = {site: rec.with_layouts(fn) for site, fn in steering.edits.items()}
            stack.enter_context(edit(adapter, edits, batch=batch))
        yield steering


@contextmanager
def steer(adapter, method: str = "add", *, sae=None, feature: int | None = None, finding: str | None = None,
          coef: float = 1.0, where: str = "image", site: str | None = None, store=None, stats=None,
          studies=None, labels=None, resources: Resources | None = None, batch=None,
          **spec: Any) -> Iterator[Steering]:
    """Steer every forward of ``adapter`` inside the block.

    ``method``: a ``steering.METHODS`` name; ``feature`` / ``finding`` / ``coef`` / ``where``:
    see :class:`~steering.methods.SteerSpec`. The residual scale comes from ``stats``, else
    ``store``, else a forward over ``studies``; ``resources`` reuses what an earlier call built.
    Yields the :class:`~steering.methods.Steering` (its ``edits`` also work with
    ``generate(..., edits=...)``).
    """
    s = SteerSpec(method=method, coef=coef, where=where, feature=feature, finding=finding, **spec)
    if resources is None and method == "prompt":
        resources = Resources(adapter, site or "", stats)  # rewrites the prompt; no scale needed
    if resources is None:
        resources = Resources.create(adapter, sae=sae, site=site, store=store, stats=stats,
                                     studies=studies, labels=labels)
    steering = build(resources, s)
    with apply(adapter, steering, batch=batch):
        yield steering
