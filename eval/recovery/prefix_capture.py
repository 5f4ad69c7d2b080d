"""Image-position activations from a forward over the prompt prefix only.

In MAIRA-2's prompt the current frontal image precedes every study-specific text field, so in a
causal model its positions depend only on the image and the fixed text before it. Cutting each
sequence after its last image token gives the same image-position activations as the full
prompt + report (tested against ``radinterp capture``) at about a third of the tokens, which is
what makes thousands of training phantoms and their healthy twins affordable on a CPU.

The result is an in-memory :class:`~eval.recovery.metrics.ScopeActs` per site, cached as one
safetensors file (``acts.<site>`` (N, d_model), ``study`` (N,), ``patch`` (N,); study ids in the
header) so a rerun reads it back.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from eval.recovery.metrics import ScopeActs
from radinterp.data.study import Study
from radinterp.models.tokens import ImageSlot, TokenKind

log = logging.getLogger(__name__)


def _cut(inputs, slot: int = int(ImageSlot.FRONTAL)):
    """``inputs`` truncated after the last token of image ``slot``; (inputs, image positions)."""
    lay = inputs.layout
    pos = np.flatnonzero((lay.kind == int(TokenKind.IMAGE)) & (lay.image_slot == slot))
    if pos.size == 0:
        raise ValueError(f"study {inputs.study_id!r} has no image tokens in slot {slot}")
    return inputs.head(int(pos[-1]) + 1), pos


@torch.inference_mode()
def capture_image_prefix(adapter, studies: list[Study], sites: list[str], *, batch_size: int = 8,
                         progress: bool = False) -> dict[str, ScopeActs]:
    """Current-frontal image rows of every study at every site (float32, in memory)."""
    from radinterp.hooks import capture

    acts: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    study, patch = [], []
    for lo in tqdm(range(0, len(studies), batch_size), desc="image prefix", disable=not progress):
        chunk = studies[lo:lo + batch_size]
        items, where = [], []
        for s in chunk:
            it, pos = _cut(adapter.build_inputs(s, with_report=False))
            items.append(it)
            where.append(pos)
        batch = adapter.collate(items, padding_side="right")
        with capture(adapter, sites, stop_early=True) as got:
            adapter.model(**adapter.to_device(batch))
        for b, (it, pos) in enumerate(zip(items, where, strict=True)):
            idx = torch.from_numpy(pos)
            for site in sites:
                acts[site].append(got[site][b].index_select(0, idx.to(got[site].device)).float().cpu())
            side = int(it.layout.patch_col[pos].max()) + 1
            study.append(np.full(pos.size, lo + b, np.int64))
            patch.append(it.layout.patch_row[pos].astype(np.int64) * side + it.layout.patch_col[pos])
    ids = [s.study_id for s in studies]
    st, pa = np.concatenate(study), np.concatenate(patch)
    return {site: ScopeActs(torch.cat(acts[site]), st, pa, ids) for site in sites}


def save_prefix(scopes: dict[str, ScopeActs], path: str | Path) -> Path:
    """Write :func:`capture_image_prefix`'s result (activations as bfloat16) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    first = next(iter(scopes.values()))
    tensors = {f"acts.{site}": sa.acts.to(torch.bfloat16).contiguous() for site, sa in scopes.items()}
    tensors.update(study=torch.from_numpy(first.study), patch=torch.from_numpy(first.patch))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"radinterp": json.dumps({"study_ids": first.study_ids})})
    tmp.replace(path)
    return path


def load_prefix(path: str | Path) -> dict[str, ScopeActs]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        ids = json.loads(f.metadata()["radinterp"])["study_ids"]
        study, patch = f.get_tensor("study").numpy(), f.get_tensor("patch").numpy()
        return {k[len("acts."):]: ScopeActs(f.get_tensor(k).float(), study, patch, ids)
                for k in f.keys() if k.startswith("acts.")}


def cached_image_prefix(adapter_fn, studies: list[Study], sites: list[str], path: str | Path,
                        **kwargs) -> dict[str, ScopeActs]:
    """:func:`load_prefix` when ``path`` holds these studies and sites, else capture and save.
    ``adapter_fn()`` loads the adapter only when a capture is needed."""
    path = Path(path)
    if path.exists():
        got = load_prefix(path)
        first = next(iter(got.values()))
        if first.study_ids == [s.study_id for s in studies] and set(sites) <= set(got):
            return {s: got[s] for s in sites}
        log.info("%s holds other studies or sites; capturing again", path)
    scopes = capture_image_prefix(adapter_fn(), studies, sites, **kwargs)
    save_prefix(scopes, path)
    return scopes
