"""saprmarks/dictionary_learning layout: ``ae.pt`` (a state dict) + ``config.json``.

This is how the published MAIRA-2 SAEs are stored. ``ae.pt`` is read with
``torch.load(weights_only=True)``: only tensors and plain containers, never arbitrary
pickled objects. Layouts by ``config.json["trainer"]["dict_class"]``:

- ``MatryoshkaBatchTopKSAE``: ``W_enc`` (d_in, d_sae), ``b_enc``, ``W_dec`` (d_sae, d_in),
  ``b_dec``, ``k``, ``threshold`` (scalar), ``group_sizes``;
- ``BatchTopKSAE``: ``encoder.weight`` (d_sae, d_in), ``encoder.bias``, ``decoder.weight``
  (d_in, d_sae), ``b_dec``, ``k``, ``threshold``.

Their thresholded encode ``relu(pre) * (relu(pre) > threshold)`` equals our JumpReLU with a
per-latent threshold equal to the scalar (a negative scalar, "never estimated", means plain
ReLU, which ``threshold = 0`` reproduces for the kept codes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from radinterp.config import write_json_atomic
from radinterp.registry import Registry
from radinterp.sae.config import SAEConfig
from radinterp.sae.model import ARCHITECTURES, SparseAutoencoder

WEIGHTS_FILENAME = "ae.pt"
CONFIG_FILENAME = "config.json"

#: dictionary_learning ``dict_class`` names we read -> (state dict, trainer cfg) -> SAE.
DICT_CLASSES: Registry[Callable[[dict[str, torch.Tensor], dict[str, Any]], SparseAutoencoder]] = (
    Registry("dictionary_learning dict_class")
)


def is_dictionary_learning_folder(path: Path) -> bool:
    return (path / WEIGHTS_FILENAME).is_file() and (path / CONFIG_FILENAME).is_file()


def load_dictionary_learning(path: str | Path) -> SparseAutoencoder:
    path = Path(path)
    config = json.loads((path / CONFIG_FILENAME).read_text())
    trainer = config.get("trainer", config)
    dict_class = trainer.get("dict_class")
    if dict_class not in DICT_CLASSES:
        raise ValueError(
            f"{path} holds a dictionary_learning {dict_class!r}; radinterp.sae loads "
            f"{', '.join(DICT_CLASSES.names())}. Other dictionaries (AutoEncoder, "
            f"GatedAutoEncoder, JumpReluAutoEncoder, AutoEncoderTopK) are different "
            f"architectures: load them with dictionary_learning itself"
        )
    try:
        state = torch.load(path / WEIGHTS_FILENAME, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(
            f"{path / WEIGHTS_FILENAME} is not a plain tensor state dict "
            f"(torch.load(weights_only=True) refused it: {exc}); re-save it as "
            f"torch.save(ae.state_dict(), 'ae.pt')"
        ) from exc
    return DICT_CLASSES.get(dict_class)(state, trainer)


def _threshold_vector(state: dict[str, torch.Tensor], d_sae: int) -> torch.Tensor:
    thr = float(state.get("threshold", torch.tensor(-1.0)).reshape(-1)[0])
    return torch.full((d_sae,), max(thr, 0.0))


def _provenance(trainer: dict[str, Any]) -> dict[str, Any]:
    keep = ("lm_name", "layer", "submodule_name", "trainer_class", "dict_class", "lr", "steps")
    return {f"dictionary_learning_{k}": trainer[k] for k in keep if k in trainer}


def _build(W_enc, b_enc, W_dec, b_dec, state, trainer, widths, arch) -> SparseAutoencoder:
    d_in, d_sae = W_enc.shape
    k = state.get("k", trainer.get("k", min(32, d_sae)))
    cfg = SAEConfig(
        d_in=int(d_in), d_sae=int(d_sae), k=float(k.item() if torch.is_tensor(k) else k),
        widths=widths, architecture=arch, model=trainer.get("lm_name"),
        extra=_provenance(trainer),
    )
    sae = ARCHITECTURES.get(arch)(cfg)
    sae.load_state_dict(
        {"W_enc": W_enc.float(), "b_enc": b_enc.float(), "W_dec": W_dec.float(),
         "b_dec": b_dec.float(), "threshold": _threshold_vector(state, int(d_sae))}
    )
    return sae


@DICT_CLASSES.register("MatryoshkaBatchTopKSAE")
def _matryoshka(state: dict[str, torch.Tensor], trainer: dict[str, Any]) -> SparseAutoencoder:
    sizes = state.get("group_sizes")
    sizes = sizes.tolist() if sizes is not None else list(trainer.get("group_sizes", []))
    widths = torch.tensor(sizes).cumsum(0).tolist() if sizes else []
    return _build(state["W_enc"], state["b_enc"], state["W_dec"], state["b_dec"], state,
                  trainer, widths, "matryoshka_batchtopk")


@DICT_CLASSES.register("BatchTopKSAE")
def _batchtopk(state: dict[str, torch.Tensor], trainer: dict[str, Any]) -> SparseAutoencoder:
    return _build(state["encoder.weight"].t(), state["encoder.bias"],
                  state["decoder.weight"].t(), state["b_dec"], state, trainer, [], "batchtopk")


def save_dictionary_learning(sae: SparseAutoencoder, path: str | Path) -> Path:
    """Write ``ae.pt`` + ``config.json`` as dictionary_learning's MatryoshkaBatchTopKSAE."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    thr = sae.threshold.detach().cpu()
    if thr.numel() and not torch.allclose(thr, thr[0].expand_as(thr)):
        raise ValueError(
            "dictionary_learning stores one scalar threshold, but this SAE has per-latent "
            "thresholds; save it in the sae-lens layout instead (save_sae(..., layout='sae_lens'))"
        )
    widths = list(sae.cfg.widths)
    group_sizes = [b - a for a, b in zip([0] + widths[:-1], widths)]
    state = {
        "W_enc": sae.W_enc.detach().cpu().float().contiguous(),
        "b_enc": sae.b_enc.detach().cpu().float().contiguous(),
        "W_dec": sae.W_dec.detach().cpu().float().contiguous(),
        "b_dec": sae.b_dec.detach().cpu().float().contiguous(),
        "k": torch.tensor(sae.cfg.k_int, dtype=torch.int),
        "threshold": thr[0].float().clone() if thr.numel() else torch.tensor(-1.0),
        "group_sizes": torch.tensor(group_sizes),
    }
    tmp = path / f".{WEIGHTS_FILENAME}.tmp"
    torch.save(state, tmp)
    tmp.replace(path / WEIGHTS_FILENAME)
    trainer = {
        "trainer_class": "MatryoshkaBatchTopKTrainer",
        "dict_class": "MatryoshkaBatchTopKSAE",
        "activation_dim": sae.d_in,
        "dict_size": sae.d_sae,
        "k": sae.cfg.k_int,
        "group_sizes": group_sizes,
        "group_fractions": [s / sae.d_sae for s in group_sizes],
        "lm_name": sae.cfg.model,
        "submodule_name": sae.cfg.site,
    }
    write_json_atomic(path / CONFIG_FILENAME, {"trainer": trainer})
    return path
