"""Capture and edit activations at canonical sites, only inside context managers.

Every hook is removed in ``finally``, also when the forward raises.

    with capture(adapter, ["lm.blocks.3.resid_post"]) as acts:
        adapter.model(**adapter.to_device(batch))   # stops after layer 3 (stop_early=True)
    acts["lm.blocks.3.resid_post"]                  # (B, T, d_model)

With ``stop_early`` the forward is aborted right after the deepest hooked site has run (the
context manager swallows the internal stop signal), so put nothing after the model call inside
the ``with`` block.

Edits get an :class:`~radinterp.edits.EditContext` beside the tensor (which positions, which
token kinds, prompt pass or generated step); ``only(where, fn)`` restricts one to positions::

    with edit(adapter, {"lm.blocks.3.resid_post": only("image", lambda h, ctx: h + v)}, batch=batch):
        adapter.model(**adapter.to_device(batch))

A context manager follows the language model's forwards with a pre-hook on its first block: a
forward whose key/value cache is empty starts at column 0 (the prompt pass, or a teacher-forced
forward); a forward with a cache of length ``past`` holds columns ``past..past+T-1`` (under HF
``generate``: T is 1 and the column is ``n_prompt + step``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from radinterp.edits import EditContext, EditFn, only
from radinterp.models.sites import Site, parse_site

if TYPE_CHECKING:
    from radinterp.models.base import Adapter, Batch

_LM_FAMILIES = ("lm_resid_post", "lm_resid_pre")


class StopForward(Exception):
    """Raised inside a hook to end the forward once the deepest wanted site has run."""


def _output_tensor(output):
    return output[0] if isinstance(output, tuple) else output


def _replace_output(output, new: torch.Tensor):
    return (new, *output[1:]) if isinstance(output, tuple) else new


def _register(module: nn.Module, where: str, fn: Callable[[torch.Tensor], torch.Tensor | None]):
    """Register ``fn(tensor) -> replacement or None`` on a module's input ('pre') or output."""
    if where == "pre":

        def pre_hook(mod, args, kwargs):
            if args:
                new = fn(args[0])
                if new is not None:
                    return (new, *args[1:]), kwargs
            else:
                new = fn(kwargs["hidden_states"])
                if new is not None:
                    kwargs = {**kwargs, "hidden_states": new}
                    return args, kwargs
            return None

        return module.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def post_hook(mod, args, output):
        new = fn(_output_tensor(output))
        return None if new is None else _replace_output(output, new)

    return module.register_forward_hook(post_hook)


def _past_length(kwargs: dict[str, Any]) -> int:
    """Positions already in the key/value cache when a decoder block is called (0: none)."""
    pos = kwargs.get("cache_position")  # transformers 4.x
    if torch.is_tensor(pos) and pos.numel():
        return int(pos.reshape(-1)[0])
    for value in kwargs.values():  # a Cache object (``cache`` / ``past_key_values``)
        if hasattr(value, "get_seq_length"):
            return int(value.get_seq_length())
    legacy = kwargs.get("past_key_value", kwargs.get("past_key_values"))
    if isinstance(legacy, (tuple, list)) and legacy and legacy[0] is not None:
        return int(legacy[0][0].shape[-2])  # legacy tuple cache: (B, heads, past, d_head)
    return 0


class _PassTracker:
    """Follows the language model's forwards inside one context manager: which columns the
    current forward holds, and which generated step it is."""

    def __init__(self, batch: Batch | None = None, num_return_sequences: int = 1) -> None:
        self.forward_index = -1
        self.past = 0
        self.columns: torch.Tensor | None = None  # (T,) long
        self.n_prompt: int | None = None
        self.layouts = self.offsets = None
        if batch is not None:
            k = num_return_sequences
            self.n_prompt = int(batch.input_ids.shape[1])
            self.layouts = tuple(layout for layout in batch.layouts for _ in range(k))
            offsets = batch.offsets or [0] * len(batch.layouts)
            self.offsets = tuple(o for o in offsets for _ in range(k))

    def pre_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        hidden = args[0] if args else kwargs["hidden_states"]  # (B, T, d_model)
        self.past = _past_length(kwargs)
        if self.n_prompt is None and self.past == 0:
            self.n_prompt = int(hidden.shape[1])  # no batch given: the first full forward's width
        self.columns = torch.arange(self.past, self.past + hidden.shape[1])
        self.forward_index += 1

    def register(self, adapter: Adapter):
        return adapter.lm_layers()[0].register_forward_pre_hook(self.pre_hook, with_kwargs=True)

    def context(self, site: str, lm: bool) -> EditContext:
        step = None
        if self.columns is not None and self.n_prompt is not None and lm:
            last = int(self.columns[-1])
            step = last - self.n_prompt if last >= self.n_prompt else None
        return EditContext(site=site, columns=self.columns if lm else None, n_prompt=self.n_prompt,
                           step=step, forward_index=self.forward_index, layouts=self.layouts,
                           offsets=self.offsets)


@contextmanager
def capture(
    adapter: Adapter,
    sites: Sequence[str],
    *,
    stop_early: bool = True,
    to_cpu: bool = False,
    dtype: torch.dtype | None = None,
    accumulate: bool = False,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the activations of ``sites`` during forwards run inside the block.

    Yields a dict site -> tensor, filled when the forward passes each site (the last forward
    wins). LM sites are (B, T, d_model); vision blocks are (n_images, 1 + n_patches, d_vision).

    ``accumulate=True`` follows a generation under the key/value cache: each forward that
    continues the cache appends its positions to the LM sites' tensors, so after
    ``generate`` they are (B, n_prompt + n_steps, d_model): the prompt pass, then one column
    per generated token that was read back (every generated token but the last). A forward
    with an empty cache starts over. The dict is filled when the block ends; needs
    ``stop_early=False``.
    """
    parsed: list[Site] = [parse_site(s) for s in sites]
    if not parsed:
        raise ValueError("capture needs at least one site")
    if accumulate and stop_early:
        raise ValueError("accumulate=True records every forward of a generation; pass stop_early=False")
    resolved = [(s, *adapter.resolve(s)) for s in parsed]  # raises on unknown layers
    deepest = max(parsed, key=lambda s: s.order).name
    store: dict[str, torch.Tensor] = {}
    parts: dict[str, list[torch.Tensor]] = {}
    tracker = _PassTracker()
    handles = []

    def make(name: str, lm: bool):
        def fn(t: torch.Tensor):
            t = t.detach()
            if dtype is not None:
                t = t.to(dtype)
            t = t.cpu() if to_cpu else t
            if accumulate and lm and tracker.past > 0 and name in parts:
                parts[name].append(t)  # (B, T_step, d_model), concatenated when the block ends
            elif accumulate:
                parts[name] = [t]
            else:
                store[name] = t
            if stop_early and name == deepest and all(s.name in store for s in parsed):
                raise StopForward
            return None

        return fn

    try:
        if accumulate:
            handles.append(tracker.register(adapter))  # before the site hooks: they read it
        for site, module, where in resolved:
            handles.append(_register(module, where, make(site.name, site.family in _LM_FAMILIES)))
        try:
            yield store
        except StopForward:
            pass
    finally:
        for h in handles:
            h.remove()
        for name, ts in parts.items():
            store[name] = ts[0] if len(ts) == 1 else torch.cat(ts, dim=1)  # (B, T_total, d)


@contextmanager
def edit(
    adapter: Adapter,
    edits: dict[str, EditFn],
    *,
    batch: Batch | None = None,
    num_return_sequences: int = 1,
) -> Iterator[None]:
    """Replace activations: ``edits[site](tensor, ctx) -> new tensor`` (or None: unchanged)
    during the forwards run in the block.

    ``ctx`` is an :class:`~radinterp.edits.EditContext`: the positions the tensor holds, their
    token kinds (with ``batch``: the batch being forwarded or generated from, whose layouts and
    left-padding offsets place every row), and whether this is the prompt pass or generated
    step n. ``num_return_sequences``: rows per study when ``generate`` samples several.
    Used by steering, e.g. ``{"lm.blocks.15.resid_post": only("generated", lambda h, ctx: h + 4 * v)}``.
    """
    if num_return_sequences < 1:
        raise ValueError(f"num_return_sequences must be >= 1, got {num_return_sequences}")
    tracker = _PassTracker(batch, num_return_sequences)
    handles = []
    try:
        handles.append(tracker.register(adapter))  # before the site hooks: they read it
        for name, fn in edits.items():
            site = parse_site(name)
            module, where = adapter.resolve(site)
            lm = site.family in _LM_FAMILIES
            handles.append(_register(module, where,
                                     lambda t, fn=fn, name=site.name, lm=lm: fn(t, tracker.context(name, lm))))
        yield
    finally:
        for h in handles:
            h.remove()


__all__ = ["EditContext", "EditFn", "StopForward", "active_hook_count", "capture", "edit", "only"]


def active_hook_count(module: nn.Module) -> int:
    """Number of forward / pre-forward hooks anywhere under ``module`` (for leak checks)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())
