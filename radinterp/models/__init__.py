"""Model adapters (registry ``ADAPTERS``) and :func:`load_adapter`.

Importing this package is cheap: transformers and the adapter modules load on first use of
an adapter name (PEP 562), so ``radinterp.models.tokens`` can be used without them.
"""

from __future__ import annotations

import importlib
import inspect
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


def resolve_adapter(name_or_path: str) -> tuple[type[Adapter], str | None]:
    """The adapter class that loads ``name_or_path`` and the path to hand it (None for a name).

    A folder's ``config.json`` picks the adapter: MAIRA-2 remote code or a LLaVA with
    ``projector_n_layers`` -> ``maira2``, other LLaVA -> ``llava``; a Hub id naming "maira"
    -> ``maira2``, any other Hub id -> ``llava``. Nothing is loaded.
    """
    adapters = _registry()
    if name_or_path in adapters:
        return adapters.get(name_or_path), None
    cfg_path = Path(name_or_path) / "config.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("model_type") == "maira2" or "projector_n_layers" in cfg:
            return adapters.get("maira2"), name_or_path
        if cfg.get("model_type") == "llava":
            return adapters.get("llava"), name_or_path
        raise ValueError(
            f"{name_or_path}: model_type {cfg.get('model_type')!r} is not a LLaVA-style model; "
            f"use one of the adapters {adapters.names()} or a LLaVA checkpoint"
        )
    if Path(name_or_path).exists():
        raise ValueError(f"{name_or_path} has no config.json; pass a HF model folder or an adapter name")
    if "/" in name_or_path:  # a Hub id
        return adapters.get("maira2" if "maira" in name_or_path.lower() else "llava"), name_or_path
    raise KeyError(
        f"unknown model {name_or_path!r}; valid adapter names: {', '.join(adapters.names())}, "
        "or a Hub id / local folder"
    )


def load_options(adapter: type[Adapter]) -> list[str]:
    """The keyword options ``adapter.load`` takes (its signature; ``path`` is not an option)."""
    params = inspect.signature(adapter.load).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        raise TypeError(
            f"{adapter.__name__}.load takes **kwargs, so a misspelt option would pass silently; "
            "name each option as a keyword parameter"
        )
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return sorted(p.name for p in params if p.kind in kinds and p.name != "path")


def check_load_options(adapter: type[Adapter], options: dict[str, Any]) -> None:
    """Refuse options ``adapter.load`` does not take, listing the valid ones, before any loading.

    An adapter may say why it refuses an option in ``refused_options`` (name -> reason).
    """
    valid = load_options(adapter)
    bad = [name for name in options if name not in valid]
    if not bad:
        return
    reasons = getattr(adapter, "refused_options", {})
    why = "; ".join(f"{name} ({reasons[name]})" if name in reasons else name for name in bad)
    raise ValueError(
        f"the {adapter.name} adapter takes no {why}; valid options: {', '.join(valid)} "
        f"(fix: drop {', '.join(bad)})"
    )


def load_adapter(name_or_path: str, **options: Any) -> Adapter:
    """Load by adapter name (``tiny``, ``maira2``, ``llava``, ``demo``), by Hub id, or by folder.

    ``options`` are the adapter's ``load`` keyword options (``load_options`` lists them); an
    option the adapter does not take raises a ``ValueError`` naming the valid ones before
    anything is loaded. How a folder or Hub id picks its adapter: :func:`resolve_adapter`.
    """
    adapter, path = resolve_adapter(name_or_path)
    check_load_options(adapter, options)
    return adapter.load(path, **options)


__all__ = [
    "ADAPTERS", "Adapter", "Batch", "ImageSlot", "ModelInputs", "PromptField", "TokenKind",
    "TokenLayout", "check_load_options", "load_adapter", "load_options", "parse_site", "resolve_adapter",
]
