"""Checkpoints of the records pass: the ``Accumulator``'s bounded state, so that a killed pass
over a big store resumes from its last checkpoint with the same final records.

A checkpoint is a folder with ``state.safetensors`` (every tensor of the running state: counts,
histogram, the filled rows of ``study_max``, the top-k and reservoir slots, the kept examples'
firing positions packed into flat arrays, the reservoir generator's state) and ``state.json``
(study ids in row order, token count, shards done, and the key of the pass). Both name the
shards done; the json is written last (atomically), so a crash between the two leaves a pair
that disagrees, which is ignored (the pass starts over) rather than half-read.

The key pins what the state depends on: the SAE's weights (a sha256 of its state dict), the
store's shards (their sha256s), the site and the ``RecordsConfig``. A checkpoint with another
key is ignored with a warning and overwritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from autointerp.accumulate import Accumulator, _Firing, _Kept
from radinterp.config import write_json_atomic

log = logging.getLogger(__name__)

TENSORS = "state.safetensors"
STATE = "state.json"
_COUNTS = ("tokens_by_kind", "fire_by_kind", "study_modality", "hist")


def sae_digest(sae: torch.nn.Module) -> str:
    """sha256 over the SAE's state dict (names and raw bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(sae.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def pass_key(store, sae, site: str, cfg) -> dict[str, Any]:
    """What a records pass's state depends on (see the module docstring)."""
    shards = hashlib.sha256("".join(ref.sha256 for ref in store.shards).encode()).hexdigest()
    return {"sae": sae_digest(sae), "store": shards, "site": site, "records": cfg.to_dict()}


def _pack(kept: _Kept, name: str) -> dict[str, torch.Tensor]:
    pairs = list(kept.examples)
    fir = [kept.examples[p] for p in pairs]
    lengths = [len(f.values) for f in fir]
    return {
        f"{name}.score": kept.score, f"{name}.study": kept.study,
        f"{name}.pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 2),  # (m, 2)
        f"{name}.lengths": torch.tensor(lengths, dtype=torch.long),  # (m,)
        f"{name}.values": torch.from_numpy(
            np.concatenate([f.values for f in fir]) if fir else np.empty(0, np.float32)),
        f"{name}.ints": torch.from_numpy(
            np.concatenate([f.ints for f in fir]) if fir else np.empty((0, 6), np.int32)),
    }


def _unpack(kept: _Kept, name: str, t: dict[str, torch.Tensor]) -> None:
    kept.score, kept.study = t[f"{name}.score"].clone(), t[f"{name}.study"].clone()
    values, ints = t[f"{name}.values"].numpy(), t[f"{name}.ints"].numpy()
    ends = np.cumsum(t[f"{name}.lengths"].numpy())
    starts = ends - t[f"{name}.lengths"].numpy()
    kept.examples = {(int(f), int(s)): _Firing(values[a:b].copy(), ints[a:b].copy())
                     for (f, s), a, b in zip(t[f"{name}.pairs"].tolist(), starts, ends)}


def save_state(folder: str | Path, acc: Accumulator, shards_done: int,
               key: dict[str, Any]) -> None:
    """Write ``acc``'s state after ``shards_done`` whole shards (see the module docstring)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = len(acc.study_ids)
    tensors = {c: getattr(acc, c) for c in _COUNTS}
    tensors |= {"study_max": acc.study_max[:n].contiguous(), "gen": acc.gen.get_state(),
                **_pack(acc.top, "top"), **_pack(acc.res, "res")}
    tmp = folder / f".{TENSORS}.tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
              metadata={"shards_done": str(shards_done)})
    os.replace(tmp, folder / TENSORS)
    write_json_atomic(folder / STATE, {"shards_done": shards_done, "n_tokens": acc.n_tokens,
                                       "study_ids": acc.study_ids, "key": key})


def load_state(folder: str | Path, acc: Accumulator, key: dict[str, Any]) -> int:
    """Restore ``acc`` from the checkpoint in ``folder``; return the shards it covers (0, with
    ``acc`` untouched, when there is none or it belongs to another pass)."""
    folder = Path(folder)
    if not (folder / STATE).exists() or not (folder / TENSORS).exists():
        return 0
    state = json.loads((folder / STATE).read_text())
    if state.get("key") != json.loads(json.dumps(key)):
        log.warning("%s holds the records of another SAE, store or config; starting the pass "
                    "over (it will be overwritten)", folder)
        return 0
    with safe_open(str(folder / TENSORS), "pt") as fh:
        if int(fh.metadata().get("shards_done", -1)) != state["shards_done"]:
            log.warning("%s: state.json and state.safetensors disagree (a crash between the "
                        "two writes); starting the pass over", folder)
            return 0
        t = {k: fh.get_tensor(k) for k in fh.keys()}
    for c in _COUNTS:
        setattr(acc, c, t[c].clone())
    acc.study_ids = list(state["study_ids"])
    acc.n_tokens = int(state["n_tokens"])
    acc.study_max[: len(acc.study_ids)] = t["study_max"]
    acc.gen.set_state(t["gen"])
    _unpack(acc.top, "top", t)
    _unpack(acc.res, "res", t)
    log.info("records pass resumed from %s after %d shards", folder, state["shards_done"])
    return int(state["shards_done"])


__all__ = ["load_state", "pass_key", "sae_digest", "save_state"]
