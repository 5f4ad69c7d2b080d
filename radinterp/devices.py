"""Torch devices from command-line names, and the device a module lives on."""

from __future__ import annotations

import os

import torch
from torch import nn


def resolve_device(device: str, local_rank: int | None = None) -> torch.device:
    """``device`` as a torch device. ``auto`` is ``cuda:<local_rank>`` when CUDA is available
    (``local_rank`` defaults to ``$LOCAL_RANK``, else 0), otherwise ``cpu``. A name that is not a
    device, or a CUDA device on a machine without CUDA, is a ``ValueError`` that says the fix."""
    if device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        rank = int(os.environ.get("LOCAL_RANK", 0)) if local_rank is None else local_rank
        return torch.device("cuda", rank)
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"--device {device!r} is not a torch device ({e}); use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA GPU here; use --device cpu")
    return dev


def module_device(module: nn.Module) -> torch.device:
    """Device of ``module``'s first parameter (where its inputs have to be)."""
    return next(module.parameters()).device
