"""Resumable training checkpoints in safetensors + JSON (no pickle).

A checkpoint folder holds ``params.safetensors`` (trainable tensors by name),
``optim.safetensors`` (AdamW moments keyed ``<param>::exp_avg`` / ``::exp_avg_sq``) and
``state.json`` (step counters, RNG seed position, metrics).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from radinterp.config import write_json_atomic


def _save_atomic(tensors: dict[str, torch.Tensor], path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)


STATE_FILE = "state.json"


def has_checkpoint(folder: Path) -> bool:
    """True once ``folder`` holds a complete checkpoint (its state file is written last)."""
    return (folder / STATE_FILE).exists()


def save_checkpoint(
    folder: Path, named: dict[str, torch.nn.Parameter], optim: torch.optim.Optimizer, state: dict
) -> None:
    """Write params, AdamW moments and ``state`` (written last: its presence marks completion)."""
    folder.mkdir(parents=True, exist_ok=True)
    _save_atomic({k: p.data for k, p in named.items()}, folder / "params.safetensors")
    moments, steps = {}, {}
    for k, p in named.items():
        st = optim.state.get(p, {})
        if "exp_avg" in st:
            moments[f"{k}::exp_avg"] = st["exp_avg"]
            moments[f"{k}::exp_avg_sq"] = st["exp_avg_sq"]
            steps[k] = float(st["step"])
    _save_atomic(moments, folder / "optim.safetensors")
    write_json_atomic(folder / STATE_FILE, {**state, "optim_steps": steps})


def load_checkpoint(
    folder: Path, named: dict[str, torch.nn.Parameter], optim: torch.optim.Optimizer
) -> dict | None:
    """Restore into ``named`` / ``optim``; returns the saved state, or None if there is none."""
    if not has_checkpoint(folder):
        return None
    state = json.loads((folder / STATE_FILE).read_text())
    params = load_file(str(folder / "params.safetensors"))
    moments = load_file(str(folder / "optim.safetensors"))
    missing = sorted(set(named) - set(params))
    if missing:
        raise ValueError(
            f"checkpoint {folder} lacks {missing[:3]}; it was written with another config -- "
            "delete it or pass the same config to resume"
        )
    with torch.no_grad():
        for k, p in named.items():
            p.copy_(params[k].to(p.dtype))
            if f"{k}::exp_avg" in moments:
                optim.state[p] = {
                    "step": torch.tensor(state["optim_steps"][k]),
                    "exp_avg": moments[f"{k}::exp_avg"].to(p.device, p.dtype),
                    "exp_avg_sq": moments[f"{k}::exp_avg_sq"].to(p.device, p.dtype),
                }
    return state
