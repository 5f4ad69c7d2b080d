"""Sparse autoencoders: the Matryoshka BatchTopK SAE module and its on-disk layouts.

``load_sae(path)`` reads sae-lens folders (``cfg.json`` + ``sae_weights.safetensors``, what
``radinterp train`` writes) and dictionary_learning folders (``ae.pt`` + ``config.json``, how
the published MAIRA-2 SAEs are stored) into :class:`SparseAutoencoder`, whose
``encode(x) -> (B, d_sae)`` / ``decode(z) -> (B, d_in)`` and ``W_enc``, ``W_dec``, ``b_enc``,
``b_dec``, ``threshold`` are what steering and autointerp use.
"""

from radinterp.sae.config import SAEConfig, validate_widths
from radinterp.sae.io import LAYOUTS, detect_layout, load_sae, save_sae
from radinterp.sae.model import ARCHITECTURES, SparseAutoencoder

__all__ = [
    "ARCHITECTURES",
    "LAYOUTS",
    "SAEConfig",
    "SparseAutoencoder",
    "detect_layout",
    "load_sae",
    "save_sae",
    "validate_widths",
]
