"""Load and save SAEs in the layouts the ecosystem uses, detected from the folder contents."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from radinterp.registry import Registry
from radinterp.sae.dictionary_learning_format import (
    is_dictionary_learning_folder,
    load_dictionary_learning,
    save_dictionary_learning,
)
from radinterp.sae.model import SparseAutoencoder
from radinterp.sae.sae_lens_format import is_sae_lens_folder, load_sae_lens, save_sae_lens


@dataclasses.dataclass(frozen=True)
class Layout:
    """One on-disk SAE layout."""

    detect: Callable[[Path], bool]
    """True when a folder is in this layout."""
    load: Callable[[Path], SparseAutoencoder]
    """Read the folder into our SAE module."""
    save: Callable[[SparseAutoencoder, Path], Path]
    """Write our SAE module into a folder."""


LAYOUTS: Registry[Layout] = Registry("SAE layout")
LAYOUTS.add("sae_lens", Layout(is_sae_lens_folder, load_sae_lens, save_sae_lens))
LAYOUTS.add(
    "dictionary_learning",
    Layout(is_dictionary_learning_folder, load_dictionary_learning, save_dictionary_learning),
)


def detect_layout(path: str | Path) -> str:
    """Name of the layout of ``path`` (sae-lens first: our own folders are sae-lens folders)."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"SAE folder {path} does not exist; pass the folder that holds "
                                f"cfg.json + sae_weights.safetensors or ae.pt + config.json")
    for name in ("sae_lens", *[n for n in LAYOUTS.names() if n != "sae_lens"]):
        if LAYOUTS.get(name).detect(path):
            return name
    found = sorted(p.name for p in path.iterdir())[:20]
    raise ValueError(
        f"{path} is not an SAE folder in a known layout (found {found}); expected "
        f"cfg.json + sae_weights.safetensors (sae-lens, what `radinterp train` writes) or "
        f"ae.pt + config.json (dictionary_learning)"
    )


def load_sae(
    path: str | Path, *, layout: str | None = None, device: str = "cpu"
) -> SparseAutoencoder:
    """Load an SAE folder (layout auto-detected) as our :class:`SparseAutoencoder`."""
    path = Path(path)
    name = layout or detect_layout(path)
    sae = LAYOUTS.get(name).load(path)
    return sae.to(device).eval()


def save_sae(sae: SparseAutoencoder, path: str | Path, *, layout: str = "sae_lens") -> Path:
    """Save ``sae`` into ``path`` in ``layout`` (default: sae-lens, loadable by sae-lens)."""
    return LAYOUTS.get(layout).save(sae, Path(path))
