"""Patch features of every study's current frontal image at one site of a model.

The features are the model's activations on the image's patch tokens only, as an
(n_side, n_side) grid in the SAE's image-token order (row-major ``patch_row``, ``patch_col``
of :class:`~radinterp.models.tokens.TokenLayout`), so a map on this grid lines up with SAE
latents on the same image and with :class:`~radinterp.models.geometry.PatchGeometry`.

- ``vision.blocks.{i}``: the block's output; the last ``n_side ** 2`` tokens are the patches
  (DINOv2 / CLIP put CLS, and registers, first).
- ``projector``: the projector's output (image tokens in the language model's width).
- ``lm.blocks.{i}.resid_*``: the frontal image's positions of a forward over the prompt up to
  the image (:func:`eval.recovery.prefix_capture.capture_image_prefix`).

Captured through :func:`radinterp.hooks.capture` (hooks removed in ``finally``; the forward stops
after the site). Written in parts of ``part_size`` studies under ``OUT/features``, so an
interrupted extraction resumes at the first unwritten part. Studies whose image does not load
are skipped and listed with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from eval.methods.io import load_safetensors, save_safetensors_atomic
from radinterp.data.sources import image_problem
from radinterp.data.study import Study
from radinterp.models.sites import parse_site

log = logging.getLogger(__name__)


@dataclass
class PatchFeatures:
    """Patch features of the studies whose frontal image loaded."""

    study_ids: list[str]
    """Row order of ``feats``."""
    feats: torch.Tensor
    """(N, n_side, n_side, d) float32."""
    site: str
    """Canonical site they were read at."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Study id -> why it has no features (its image did not load)."""

    @property
    def n_side(self) -> int:
        return int(self.feats.shape[1])

    @property
    def d(self) -> int:
        return int(self.feats.shape[-1])

    def rows(self, study_ids: list[str]) -> torch.Tensor:
        """Row indices (K,) of ``study_ids`` (each must have features)."""
        index = {s: i for i, s in enumerate(self.study_ids)}
        missing = [s for s in study_ids if s not in index]
        if missing:
            raise KeyError(f"no patch features for studies {missing[:3]}; they were skipped "
                           "(see skipped) or are not in this run's data")
        return torch.tensor([index[s] for s in study_ids], dtype=torch.long)

    def select(self, study_ids: list[str]) -> torch.Tensor:
        """(K, n_side, n_side, d) features of ``study_ids`` in that order."""
        return self.feats.index_select(0, self.rows(study_ids))


def default_site(adapter: Any) -> str:
    """The last vision block of ``adapter``'s model."""
    return f"vision.blocks.{len(adapter.vision_blocks()) - 1}"


def check_site(adapter: Any, site: str) -> str:
    """``site`` validated against the model (form and layer range); raises naming the fix."""
    adapter.resolve(parse_site(site))
    return site


def _frontal_only(study: Study) -> Study:
    return Study(study.study_id, frontal=study.frontal)


@torch.inference_mode()
def _tower_patches(adapter: Any, studies: list[Study], site: str) -> torch.Tensor:
    """(B, n_side, n_side, d) patch features at a vision-block or projector site."""
    from radinterp.hooks import capture

    n = adapter.n_patches_side
    items = [adapter.build_inputs(_frontal_only(s)) for s in studies]
    batch = adapter.collate(items)
    with capture(adapter, [site], stop_early=True) as got:
        adapter.model(**adapter.to_device(batch))
    acts = got[site]  # (B, T, d): one image per study
    if acts.shape[0] != len(studies) or acts.shape[1] < n * n:
        raise ValueError(f"site {site!r} gave activations of shape {tuple(acts.shape)}, not "
                         f"({len(studies)}, >= {n * n}, d); use a vision.blocks.{{i}} or projector site")
    return acts[:, -n * n:].float().cpu().reshape(len(studies), n, n, -1)


def _lm_patches(adapter: Any, studies: list[Study], site: str) -> torch.Tensor:
    """(B, n_side, n_side, d) frontal-image features at a language-model site."""
    from eval.recovery.prefix_capture import capture_image_prefix

    n = adapter.n_patches_side
    sa = capture_image_prefix(adapter, studies, [site], batch_size=len(studies))[site]
    out = torch.zeros(len(studies), n * n, sa.acts.shape[1])
    out[torch.from_numpy(sa.study), torch.from_numpy(sa.patch)] = sa.acts
    return out.reshape(len(studies), n, n, -1)


def extract_batch(adapter: Any, studies: list[Study], site: str) -> torch.Tensor:
    """(B, n_side, n_side, d) float32 patch features of ``studies`` at ``site``."""
    lm = parse_site(site).family.startswith("lm_")
    return (_lm_patches if lm else _tower_patches)(adapter, studies, site)


def extract_patch_features(adapter: Any, studies: list[Study], site: str, cache_dir: str | Path, *,
                           batch_size: int = 16, part_size: int = 256,
                           progress: bool = True) -> PatchFeatures:
    """Patch features of ``studies`` at ``site``, cached in ``cache_dir`` and resumed from it."""
    check_site(adapter, site)
    cache = Path(cache_dir)
    done: dict[str, tuple[Path, dict]] = {}
    for part in sorted(cache.glob("part-*.safetensors")):
        _, meta = load_safetensors(part) if part.stat().st_size else ({}, {})
        if meta.get("site") != site:
            raise ValueError(f"{part} holds features of site {meta.get('site')!r}, not {site!r}; "
                             "pass --overwrite or choose another --out")
        for sid in [*meta["study_ids"], *meta["skipped"]]:
            done[sid] = (part, meta)
    todo = [s for s in studies if s.study_id not in done]
    n_parts = len(list(cache.glob("part-*.safetensors")))
    bar = tqdm(total=len(studies), initial=len(studies) - len(todo), unit="study",
               desc=f"patch features {site}", disable=not progress)
    with bar:
        for lo in range(0, len(todo), part_size):
            chunk = todo[lo:lo + part_size]
            problems = {s.study_id: image_problem(s) for s in chunk}
            good = [s for s in chunk if problems[s.study_id] is None]
            feats = []
            for b in range(0, len(good), batch_size):
                feats.append(extract_batch(adapter, good[b:b + batch_size], site))
                bar.update(len(good[b:b + batch_size]))
            bar.update(len(chunk) - len(good))
            skipped = {sid: why for sid, why in problems.items() if why is not None}
            for sid, why in skipped.items():
                log.warning("no patch features for study %s: %s", sid, why)
            n = adapter.n_patches_side
            tensor = torch.cat(feats) if feats else torch.zeros(0, n, n, adapter.site_dim(site))
            meta = {"site": site, "study_ids": [s.study_id for s in good], "skipped": skipped}
            path = cache / f"part-{n_parts:05d}.safetensors"
            save_safetensors_atomic(path, {"feats": tensor}, meta)
            n_parts += 1
            for sid in [*meta["study_ids"], *skipped]:
                done[sid] = (path, meta)
    return _assemble(studies, done, site)


def _assemble(studies: list[Study], done: dict[str, tuple[Path, dict]], site: str) -> PatchFeatures:
    parts: dict[Path, tuple[torch.Tensor, dict[str, int]]] = {}
    rows, ids, skipped = [], [], {}
    for s in studies:
        path, meta = done[s.study_id]
        if s.study_id in meta["skipped"]:
            skipped[s.study_id] = meta["skipped"][s.study_id]
            continue
        if path not in parts:
            parts[path] = (load_safetensors(path)[0]["feats"],
                           {sid: i for i, sid in enumerate(meta["study_ids"])})
        feats, index = parts[path]
        rows.append(feats[index[s.study_id]])
        ids.append(s.study_id)
    if not rows:
        raise ValueError(f"no study's image loaded ({len(skipped)} skipped, e.g. "
                         f"{next(iter(skipped.values()), '')}); check the data's image paths")
    return PatchFeatures(ids, torch.stack(rows), site, skipped)


__all__ = ["PatchFeatures", "check_site", "default_site", "extract_batch", "extract_patch_features"]
