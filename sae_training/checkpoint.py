"""Resumable checkpoints: safetensors + JSON, written to a temp folder then swapped in.

Layout of ``OUT/checkpoint/``: ``model.safetensors`` (training-space weights and threshold),
``optimizer.safetensors`` + ``optimizer.json`` (Adam moments and param groups),
``stats.safetensors`` (dead-latent counters), ``state.json`` (step, data position, scale...).
A crash while saving leaves the previous checkpoint (``checkpoint`` or ``checkpoint.old``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from radinterp.config import write_json_atomic

CHECKPOINT_DIR = "checkpoint"


def _optimizer_tensors(
    opt: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_checkpoint(
    out_dir: Path,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    stats: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> Path:
    """Atomically replace ``out_dir/checkpoint`` with the given training state."""
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / CHECKPOINT_DIR
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".checkpoint.tmp-"))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in model_state.items()},
                  str(tmp / "model.safetensors"))
        opt_tensors, opt_json = _optimizer_tensors(optimizer)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        write_json_atomic(tmp / "optimizer.json", opt_json)
        save_file({k: v.detach().cpu().contiguous() for k, v in stats.items()},
                  str(tmp / "stats.safetensors"))
        write_json_atomic(tmp / "state.json", state)
        old = out_dir / f"{CHECKPOINT_DIR}.old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def find_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint folder in ``out_dir``, if any."""
    for name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old"):
        path = out_dir / name
        if (path / "state.json").is_file():
            return path
    return None


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    """Read a checkpoint folder: model, optimizer state dict, stats and state JSON."""
    model = load_file(str(path / "model.safetensors"), device=str(device))
    opt_tensors = load_file(str(path / "optimizer.safetensors"), device=str(device))
    opt_json = json.loads((path / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, value in opt_tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for key, value in opt_json["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for st in state.values():  # Adam keeps ``step`` on the CPU unless capturable/fused
        if "step" in st and torch.is_tensor(st["step"]):
            st["step"] = st["step"].cpu()
    return {
        "model": model,
        "optimizer": {"state": state, "param_groups": opt_json["param_groups"]},
        "stats": load_file(str(path / "stats.safetensors"), device=str(device)),
        "state": json.loads((path / "state.json").read_text()),
    }
