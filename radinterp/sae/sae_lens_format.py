"""sae-lens folder layout: ``cfg.json`` + ``sae_weights.safetensors``.

We save a trained Matryoshka BatchTopK SAE the way sae-lens saves its BatchTopK SAEs for
inference: as a ``jumprelu`` SAE whose per-latent ``threshold`` is the threshold estimated
during training, so ``sae_lens.SAE.load_from_disk(path)`` loads it and its encode/decode
match ours. The training architecture, ``k`` and the Matryoshka widths go into
``metadata`` (``training_architecture`` / ``training_architecture_details``), where
sae-lens itself records them, and our full config under ``metadata.radinterp``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from radinterp.config import write_json_atomic
from radinterp.registry import Registry
from radinterp.sae.config import SAEConfig
from radinterp.sae.model import ARCHITECTURES, SparseAutoencoder

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
_MIN_SAE_LENS_VERSION = "6.0.0"

#: sae-lens ``architecture`` values we can read, mapped to a builder (cfg dict, state) -> SAE.
SAE_LENS_ARCHITECTURES: Registry[
    Callable[[dict[str, Any], dict[str, torch.Tensor]], SparseAutoencoder]
] = Registry("sae-lens architecture")


def _sae_lens_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:  # the installed distribution's version; importing sae_lens itself takes seconds
        return version("sae-lens")
    except PackageNotFoundError:
        return _MIN_SAE_LENS_VERSION


def save_sae_lens(sae: SparseAutoencoder, path: str | Path) -> Path:
    """Write ``cfg.json`` + ``sae_weights.safetensors`` (float32) into ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = sae.cfg
    state = {
        name: t.detach().to("cpu", torch.float32).contiguous()
        for name, t in (
            ("W_enc", sae.W_enc), ("b_enc", sae.b_enc), ("W_dec", sae.W_dec),
            ("b_dec", sae.b_dec), ("threshold", sae.threshold),
        )
    }
    tmp = path / f".{WEIGHTS_FILENAME}.tmp"
    save_file(state, str(tmp))
    tmp.replace(path / WEIGHTS_FILENAME)
    cfg_json = {
        "architecture": "jumprelu",
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "sae_lens_version": _sae_lens_version(),
            "sae_lens_training_version": None,
            "model_name": cfg.model,
            "hook_name": cfg.site,
            "training_architecture": cfg.architecture,
            "training_architecture_details": {
                "k": cfg.k,
                "matryoshka_widths": list(cfg.widths),
                "rescale_acts_by_decoder_norm": False,
            },
            "radinterp": cfg.to_dict(),
        },
    }
    write_json_atomic(path / CFG_FILENAME, cfg_json)
    return path


def is_sae_lens_folder(path: Path) -> bool:
    return (path / CFG_FILENAME).is_file() and (path / WEIGHTS_FILENAME).is_file()


def load_sae_lens(path: str | Path) -> SparseAutoencoder:
    """Read a sae-lens folder whose architecture is registered in SAE_LENS_ARCHITECTURES."""
    path = Path(path)
    cfg = json.loads((path / CFG_FILENAME).read_text())
    arch = cfg.get("architecture", "standard")
    if arch not in SAE_LENS_ARCHITECTURES:
        raise ValueError(
            f"{path} holds a sae-lens {arch!r} SAE; radinterp.sae loads only "
            f"{', '.join(SAE_LENS_ARCHITECTURES.names())} (BatchTopK / Matryoshka SAEs saved "
            f"for inference). Train one with `radinterp train`, or load this folder with "
            f"sae_lens.SAE.load_from_disk"
        )
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise ValueError(
            f"{path}: normalize_activations={cfg['normalize_activations']!r} is not folded "
            f"into the weights; fold it with sae-lens (fold_activation_norm_scaling_factor) "
            f"and save again"
        )
    state = load_file(str(path / WEIGHTS_FILENAME))
    return SAE_LENS_ARCHITECTURES.get(arch)(cfg, state)


@SAE_LENS_ARCHITECTURES.register("jumprelu")
def _from_jumprelu(cfg: dict[str, Any], state: dict[str, torch.Tensor]) -> SparseAutoencoder:
    meta = cfg.get("metadata") or {}
    ours = meta.get("radinterp")
    if ours:
        sae_cfg = SAEConfig.from_dict(ours)
    else:
        details = meta.get("training_architecture_details") or {}
        d_sae = int(cfg["d_sae"])
        sae_cfg = SAEConfig(
            d_in=int(cfg["d_in"]),
            d_sae=d_sae,
            k=float(details.get("k") or min(32, d_sae)),
            widths=list(details.get("matryoshka_widths") or [d_sae]),
            architecture=_known(meta.get("training_architecture")),
            apply_b_dec_to_input=bool(cfg.get("apply_b_dec_to_input", True)),
            site=meta.get("hook_name"),
            model=meta.get("model_name"),
        )
    if "log_threshold" in state:
        state["threshold"] = torch.exp(state.pop("log_threshold"))
    sae = ARCHITECTURES.get(sae_cfg.architecture)(sae_cfg)
    sae.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return sae


def _known(training_architecture: str | None) -> str:
    """The training architecture if we implement it, else its inference form (jumprelu)."""
    name = str(training_architecture or "jumprelu")
    return name if name in ARCHITECTURES else "jumprelu"
