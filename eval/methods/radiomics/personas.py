"""Studies as arrays on the working grid, and their healthy personas.

- ``oracle``: a phantom's healthy twin (``meta['healthy']``: same patient, pose, exposure and
  grain, no findings), the exact persona; only phantoms have it.
- ``learned``: :mod:`eval.methods.radiomics.inpainter` trained on the training split's normal
  studies, painting each study's lung region healthy; works on any radiograph.
- ``none``: no persona (the ablation): only the image's own features.

Residual features are the image's features minus its persona's (each on its own lung region,
cut by the same grids), so they hold what the findings changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from eval.methods.radiomics.regions import dice, load_grey, study_region
from radinterp.data.study import Study

log = logging.getLogger(__name__)

PERSONAS = ("oracle", "learned", "none")
"""Persona kinds; the ablation compares each with ``none``."""


@dataclass
class StudyArrays:
    """The studies of one run on the (S, S) working grid."""

    study_ids: list[str]
    """Row order of every array."""
    images: np.ndarray
    """(N, S, S) uint8 images (min-max to 0-255, resized)."""
    regions: np.ndarray
    """(N, S, S) bool lung region of each image."""
    healthy_regions: np.ndarray
    """(N, S, S) bool lung region of each healthy persona."""
    region_sources: list[str]
    """Per study: ``phantom``, ``mask`` or ``estimate``."""
    oracle: np.ndarray | None
    """(N, S, S) uint8 healthy twins, or None when some study has none (non-phantom data)."""

    def rows(self, ids: list[str] | tuple[str, ...]) -> np.ndarray:
        where = {s: i for i, s in enumerate(self.study_ids)}
        return np.array([where[s] for s in ids], dtype=np.int64)


def load_arrays(studies: list[Study], size: int, region: str = "auto",
                progress: bool = True) -> StudyArrays:
    """Images, lung regions and (where every study has one) oracle twins of ``studies``."""
    n = len(studies)
    images = np.zeros((n, size, size), np.uint8)
    regions = np.zeros((n, size, size), bool)
    healthy = np.zeros((n, size, size), bool)
    sources: list[str] = []
    has_twin = all(s.meta.get("healthy") for s in studies)
    oracle = np.zeros((n, size, size), np.uint8) if has_twin else None
    for i, s in enumerate(tqdm(studies, desc="images + lung regions", disable=not progress)):
        if s.frontal is None:
            raise ValueError(f"study {s.study_id!r} has no frontal image; drop it from the data")
        grey = load_grey(s.frontal, size)
        images[i] = grey.round().astype(np.uint8)
        r = study_region(s, grey, size, region)
        regions[i], healthy[i] = r.image, r.healthy
        sources.append(r.source)
        if oracle is not None:
            oracle[i] = load_grey(s.meta["healthy"], size).round().astype(np.uint8)
    return StudyArrays([s.study_id for s in studies], images, regions, healthy, sources, oracle)


def learned_personas(arrays: StudyArrays, train_normal: np.ndarray, cfg,
                     progress: bool = True) -> tuple[np.ndarray, object]:
    """(personas (N, S, S) float32 on 0-255, inpainter): trained on the rows ``train_normal``
    (normal training studies, each painted over its own lung region)."""
    from eval.methods.radiomics.inpainter import paint, train_inpainter

    log.info("training the persona inpainter on %d normal training images", len(train_normal))
    model = train_inpainter(arrays.images[train_normal].astype(np.float32),
                            arrays.regions[train_normal], cfg, progress)
    out = paint(model, arrays.images.astype(np.float32), arrays.regions, cfg)
    return out, model


def persona_agreement(arrays: StudyArrays, learned: np.ndarray, rows: np.ndarray,
                      abnormal: np.ndarray) -> dict[str, float | int | None]:
    """How close the learned persona is to the oracle twin inside the healthy lung region:
    mean absolute grey-level error of the learned persona and, as its baseline, of the image
    itself (the no-persona guess), on abnormal and on normal studies of ``rows``."""
    if arrays.oracle is None:
        return {"available": False}
    out: dict[str, float | int | None] = {"available": True}
    for name, sel in (("abnormal", rows[abnormal]), ("normal", rows[~abnormal])):
        if sel.size == 0:
            out[f"{name}_studies"] = 0
            continue
        m = arrays.healthy_regions[sel]
        o = arrays.oracle[sel].astype(np.float32)
        out[f"{name}_studies"] = int(sel.size)
        out[f"{name}_mae_learned_vs_oracle"] = float(np.abs(learned[sel] - o)[m].mean())
        out[f"{name}_mae_image_vs_oracle"] = float(np.abs(arrays.images[sel] - o)[m].mean())
    return out


def region_agreement(arrays: StudyArrays) -> dict:
    """Dice of the lung estimate against the lung masks where a study has one (how good the
    estimate used for mask-less studies is)."""
    from eval.methods.radiomics.regions import estimate_lungs

    scores = [dice(arrays.regions[i], estimate_lungs(arrays.images[i].astype(np.float32)))
              for i, src in enumerate(arrays.region_sources) if src == "mask"]
    return {"studies_with_mask": len(scores),
            "estimate_dice_mean": float(np.mean(scores)) if scores else None,
            "region_sources": {k: arrays.region_sources.count(k) for k in sorted(set(arrays.region_sources))}}
