"""Model adapters (registry ``ADAPTERS``) and :func:`load_adapter`.

Importing this package is cheap: transformers and the adapter modules load on first use of
an adapter name (PEP 562), so ``radinterp.models.tokens`` can be used without them.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radinterp.models.sites import parse_site
from radinterp.models.tokens import ImageSlot, PromptField, TokenKind, TokenLayout

if TYPE_CHECKING:
    from radinterp.models.base import ADAPTERS, Adapter, Batch, ModelInputs

_ADAPTER_MODULES = ("radinterp.models.llava", "radinterp.models.maira2", "radinterp.models.demo")
_LAZY = {"ADAPTERS", "Adapter", "Batch", "ModelInputs"}


def _registry():
    """The adapter registry with every adapter module imported (each registers itself)."""
    for mod in _ADAPTER_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency, not an absent optional adapter
                raise
    from radinterp.models.base import ADAPTERS

    return ADAPTERS


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        _registry()
        return getattr(importlib.import_module("radinterp.models.base"), name)
    raise AttributeError(f"module 'radinterp.models' has no attribute {name!r}")


def load_adapter(name_or_path: str, **kwargs) -> Adapter:
    """Load by adapter name (``tiny``, ``maira2``, ``llava``, ``demo``), by Hub id, or by folder.

    A folder's ``config.json`` picks the adapter: MAIRA-2 remote code or a LLaVA with
    ``projector_n_layers`` -> ``maira2``, other LLaVA -> ``llava``.
    """
    adapters = _registry()
    if name_or_path in adapters:
        return adapters.get(name_or_path).load(**kwargs)
    cfg_path = Path(name_or_path) / "config.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("model_type") == "maira2" or "projector_n_layers" in cfg:
            return adapters.get("maira2").load(name_or_path, **kwargs)
        if cfg.get("model_type") == "llava":
            return adapters.get("llava").load(name_or_path, **kwargs)
        raise ValueError(
            f"{name_or_path}: model_type {cfg.get('model_type')!r} is not a LLaVA-style model; "
            f"use one of the adapters {adapters.names()} or a LLaVA checkpoint"
        )
    if Path(name_or_path).exists():
        raise ValueError(f"{name_or_path} has no config.json; pass a HF model folder or an adapter name")
    if "/" in name_or_path:  # a Hub id
        if "maira" in name_or_path.lower():
            return adapters.get("maira2").load(name_or_path, **kwargs)
        return adapters.get("llava").load(name_or_path, **kwargs)
    raise KeyError(
        f"unknown model {name_or_path!r}; valid adapter names: {', '.join(adapters.names())}, "
        "or a Hub id / local folder"
    )


__all__ = [
    "ADAPTERS", "Adapter", "Batch", "ImageSlot", "ModelInputs", "PromptField", "TokenKind",
    "TokenLayout", "load_adapter", "parse_site",
]
