"""Capture and edit activations at canonical sites, only inside context managers.

Every hook is removed in ``finally``, also when the forward raises.

    with capture(adapter, ["lm.blocks.3.resid_post"]) as acts:
        adapter.model(**adapter.to_device(batch))   # stops after layer 3 (stop_early=True)
    acts["lm.blocks.3.resid_post"]                  # (B, T, d_model)

With ``stop_early`` the forward is aborted right after the deepest hooked site has run (the
context manager swallows the internal stop signal), so put nothing after the model call inside
the ``with`` block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from radinterp.models.base import Adapter
from radinterp.models.sites import Site, parse_site


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


@contextmanager
def capture(
    adapter: Adapter,
    sites: Sequence[str],
    *,
    stop_early: bool = True,
    to_cpu: bool = False,
    dtype: torch.dtype | None = None,
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the activations of ``sites`` during forwards run inside the block.

    Yields a dict site -> tensor, filled when the forward passes each site (the last forward
    wins). LM sites are (B, T, d_model); vision blocks are (n_images, 1 + n_patches, d_vision).
    """
    parsed: list[Site] = [parse_site(s) for s in sites]
    if not parsed:
        raise ValueError("capture needs at least one site")
    resolved = [(s, *adapter.resolve(s)) for s in parsed]  # raises on unknown layers
    deepest = max(parsed, key=lambda s: s.order).name
    store: dict[str, torch.Tensor] = {}
    handles = []

    def make(name: str):
        def fn(t: torch.Tensor):
            t = t.detach()
            if dtype is not None:
                t = t.to(dtype)
            store[name] = t.cpu() if to_cpu else t
            if stop_early and name == deepest and all(s.name in store for s in parsed):
                raise StopForward
            return None

        return fn

    try:
        for site, module, where in resolved:
            handles.append(_register(module, where, make(site.name)))
        try:
            yield store
        except StopForward:
            pass
    finally:
        for h in handles:
            h.remove()


EditFn = Callable[[torch.Tensor], torch.Tensor]


@contextmanager
def edit(adapter: Adapter, edits: dict[str, EditFn]) -> Iterator[None]:
    """Replace activations: ``edits[site](tensor) -> new tensor`` during forwards in the block.

    Used by steering: e.g. ``{"lm.blocks.15.resid_post": lambda h: h + 4.0 * direction}``.
    """
    handles = []
    try:
        for name, fn in edits.items():
            module, where = adapter.resolve(name)
            handles.append(_register(module, where, fn))
        yield
    finally:
        for h in handles:
            h.remove()


def active_hook_count(module: nn.Module) -> int:
    """Number of forward / pre-forward hooks anywhere under ``module`` (for leak checks)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())
