"""Model adapters (registry ``ADAPTERS``) and :func:`load_adapter`."""

from __future__ import annotations

import json
from pathlib import Path

from radinterp.models import llava as _llava  # noqa: F401  (registers "llava")
from radinterp.models import maira2 as _maira2  # noqa: F401  (registers "maira2", "tiny")
from radinterp.models.base import ADAPTERS, Adapter, Batch, ModelInputs
from radinterp.models.sites import parse_site
from radinterp.models.tokens import ImageSlot, PromptField, TokenKind, TokenLayout


def _register_optional() -> None:
    try:  # the trained demo model registers itself when its module exists
        from radinterp.models import demo as _demo  # noqa: F401
    except ImportError:
        pass


_register_optional()


def load_adapter(name_or_path: str, **kwargs) -> Adapter:
    """Load by adapter name (``tiny``, ``maira2``, ``llava``, ``demo``), by Hub id, or by folder.

    A folder's ``config.json`` picks the adapter: MAIRA-2 remote code or a LLaVA with
    ``projector_n_layers`` -> ``maira2``, other LLaVA -> ``llava``.
    """
    if name_or_path in ADAPTERS:
        return ADAPTERS.get(name_or_path).load(**kwargs)
    cfg_path = Path(name_or_path) / "config.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("model_type") == "maira2" or "projector_n_layers" in cfg:
            return ADAPTERS.get("maira2").load(name_or_path, **kwargs)
        if cfg.get("model_type") == "llava":
            return ADAPTERS.get("llava").load(name_or_path, **kwargs)
        raise ValueError(
            f"{name_or_path}: model_type {cfg.get('model_type')!r} is not a LLaVA-style model; "
            f"use one of the adapters {ADAPTERS.names()} or a LLaVA checkpoint"
        )
    if Path(name_or_path).exists():
        raise ValueError(f"{name_or_path} has no config.json; pass a HF model folder or an adapter name")
    if "/" in name_or_path:  # a Hub id
        if "maira" in name_or_path.lower():
            return ADAPTERS.get("maira2").load(name_or_path, **kwargs)
        return ADAPTERS.get("llava").load(name_or_path, **kwargs)
    raise KeyError(
        f"unknown model {name_or_path!r}; valid adapter names: {', '.join(ADAPTERS.names())}, "
        "or a Hub id / local folder"
    )


__all__ = [
    "ADAPTERS", "Adapter", "Batch", "ImageSlot", "ModelInputs", "PromptField", "TokenKind",
    "TokenLayout", "load_adapter", "parse_site",
]
