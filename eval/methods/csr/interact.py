"""CSR's doctor-in-the-loop interactions, and the simulated doctor used to measure them.

The paper's three interactions, as functions on a trained :class:`CSRModel`:

- concept level, :func:`reject_concepts` -> a (N, K) bool mask for ``CSRModel.task_logits``:
  a rejected concept's scores are zeroed before the task head;
- spatial level, :func:`box_weights` + :func:`~eval.methods.csr.model.reweight_maps`: a
  positive box keeps the patches inside it (those outside get ``outside_weight``), a negative
  box sends the patches inside it to the lowest similarity; scores are then recomputed as the
  maximum of the reweighted maps;
- atlas level, :func:`prune_prototypes`: pruned prototypes leave the concept maps and score 0.

The simulated doctor (ground truth standing in for a radiologist, so the numbers are an upper
bound of what feedback can do): :func:`refine_atlas` prunes the prototypes whose own map misses
the mask on the validation split; :func:`oracle_rejections` rejects the concepts a study does not
have but scores above the concept's validation threshold and that argue for the prediction
(:func:`concept_support`); :func:`oracle_boxes` draws a positive
box around each finding's mask, or a negative box on a map peak that misses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from eval.methods.csr.model import CSRModel
from eval.methods.localisation import localisation_scores
from eval.methods.masks import PatchMasks


@dataclass(frozen=True)
class Box:
    """A box drawn on one study's patch grid for one concept (rows/cols, end exclusive)."""

    study: int
    """Row of the study in the tensors the box is applied to."""
    concept: int
    """Concept index."""
    r0: int
    """First patch row inside the box."""
    c0: int
    """First patch column inside the box."""
    r1: int
    """One past the last patch row."""
    c1: int
    """One past the last patch column."""
    positive: bool = True
    """True: "the concept is here"; False: "the concept is not here"."""

    def __post_init__(self) -> None:
        if not (0 <= self.r0 < self.r1 and 0 <= self.c0 < self.c1):
            raise ValueError(f"box rows {self.r0}:{self.r1}, cols {self.c0}:{self.c1} are empty or "
                             "negative; pass r0 < r1 and c0 < c1 on the patch grid")


def reject_concepts(n_studies: int, n_concepts: int, rejected: dict[int, Sequence[int]] | Sequence[int]
                    ) -> torch.Tensor:
    """(N, K) bool mask of rejected concepts: a list rejects those concepts for every study, a
    dict study row -> concepts rejects them for that study only."""
    out = torch.zeros(n_studies, n_concepts, dtype=torch.bool)
    items = rejected.items() if isinstance(rejected, dict) else [(None, rejected)]
    for row, concepts in items:
        for k in concepts:
            if not 0 <= int(k) < n_concepts:
                raise ValueError(f"concept index {k} is out of range 0..{n_concepts - 1}; "
                                 "pass a concept of this model")
            if row is None:
                out[:, int(k)] = True
            else:
                out[int(row), int(k)] = True
    return out


def box_weights(shape: tuple[int, int, int, int], boxes: Sequence[Box],
                outside_weight: float = 0.0) -> torch.Tensor:
    """Spatial weights (N, K, 1, h, w) for ``reweight_maps`` from boxes on the patch grid.

    A (study, concept) with positive boxes keeps their union (weight 1) and scales the rest by
    ``outside_weight``; a negative box sets its patches to 0. Untouched pairs stay 1."""
    n, k, h, w = shape
    if not 0.0 <= outside_weight <= 1.0:
        raise ValueError(f"outside_weight {outside_weight} is outside [0, 1]; pass e.g. 0")
    weights = torch.ones(n, k, h, w)
    inside = torch.zeros(n, k, h, w, dtype=torch.bool)
    for b in boxes:
        if not (0 <= b.study < n and 0 <= b.concept < k) or b.r1 > h or b.c1 > w:
            raise ValueError(f"box {b} does not fit studies={n}, concepts={k}, grid={h}x{w}; "
                             "pass boxes on this run's patch grid")
        if b.positive:
            inside[b.study, b.concept, b.r0:b.r1, b.c0:b.c1] = True
    has_pos = inside.flatten(2).any(-1)[..., None, None]  # (N, K, 1, 1)
    weights = torch.where(has_pos & ~inside, torch.full_like(weights, outside_weight), weights)
    for b in boxes:
        if not b.positive:
            weights[b.study, b.concept, b.r0:b.r1, b.c0:b.c1] = 0.0
    return weights[:, :, None]  # (N, K, 1, h, w)


def prune_prototypes(model: CSRModel, prototypes: Sequence[tuple[int, int]]) -> CSRModel:
    """Mark (concept, prototype) pairs inactive in ``model``'s atlas (in place); returns it."""
    active = model.atlas.active
    for k, m in prototypes:
        if not (0 <= k < active.shape[0] and 0 <= m < active.shape[1]):
            raise ValueError(f"prototype ({k}, {m}) is outside the atlas {tuple(active.shape)}; "
                             "pass concept:index pairs of this model")
        active[k, m] = False
    return model


def refine_atlas(proto_maps: np.ndarray, masks: PatchMasks, positives: np.ndarray,
                 active: torch.Tensor, min_hit: float) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The simulated atlas refinement: per prototype, the pointing game of its own map over the
    validation studies that have its concept (with a mask); prototypes below ``min_hit`` are
    pruned, except each concept's best one. A concept without any scored study keeps all.

    proto_maps (N, K, M, h, w) on validation. Returns (pruned pairs, hit rates (K, M), NaN
    where unscored)."""
    n_k, n_m = proto_maps.shape[1:3]
    hits = np.full((n_k, n_m), np.nan)
    for m in range(n_m):
        scores = localisation_scores(proto_maps[:, :, m], masks, positives)
        for k, name in enumerate(masks.findings):
            rate = scores[name].summary()["pointing_game"]
            hits[k, m] = np.nan if rate is None else rate
    pruned = []
    for k in range(n_k):
        if np.isnan(hits[k]).all():
            continue
        live = [m for m in range(n_m) if bool(active[k, m])]
        best = max(live, key=lambda m: hits[k, m])
        pruned += [(k, m) for m in live if m != best and hits[k, m] < min_hit]
    return pruned, hits


@torch.no_grad()
def concept_support(model: CSRModel, scores: torch.Tensor, predicted: torch.Tensor, exclusive: bool
                    ) -> torch.Tensor:
    """How much each concept argues for the prediction: (N, K) from prototype scores (N, K, M)
    and predicted classes (N, C) bool. Exclusive tasks: its share of the predicted class's
    logit above the mean logit; multi-label: its share of the predicted classes' logits."""
    inputs = model.task_inputs(scores)  # (N, K, M)
    w = model.task_head.weight.view(-1, *inputs.shape[1:])  # (C, K, M)
    if exclusive:
        w = w - w.mean(0, keepdim=True)
    return torch.einsum("nkm,nc,ckm->nk", inputs, predicted.float(), w)


def oracle_rejections(concept_scores: np.ndarray, positives: np.ndarray, thresholds: np.ndarray,
                      support: torch.Tensor | None = None) -> torch.Tensor:
    """(N, K) bool: concepts the study lacks that score at or above their threshold and, with
    ``support`` (N, K), argue for the prediction (what a doctor reading the explanation sees)."""
    out = (concept_scores >= thresholds[None, :]) & ~np.asarray(positives, bool)
    if support is not None:
        out &= support.numpy() > 0
    return torch.from_numpy(out)


def oracle_boxes(concept_maps: np.ndarray, masks: PatchMasks, positives: np.ndarray,
                 positive: bool) -> list[Box]:
    """Simulated spatial feedback on (N, K, h, w) maps: for each study's finding with a mask,
    a positive box around the mask's patches (``positive``), or a negative box on the map's
    peak patch when the peak misses the mask (one round of "not here")."""
    target = masks.target()
    boxes = []
    for i, k in zip(*np.nonzero(np.asarray(positives, bool) & masks.known)):
        t = target[i, k]
        if not t.any():
            continue
        if positive:
            rows, cols = np.flatnonzero(t.any(1)), np.flatnonzero(t.any(0))
            boxes.append(Box(int(i), int(k), int(rows[0]), int(cols[0]), int(rows[-1]) + 1,
                             int(cols[-1]) + 1, True))
            continue
        r, c = np.unravel_index(int(np.argmax(concept_maps[i, k])), t.shape)
        if not t[r, c]:
            boxes.append(Box(int(i), int(k), int(r), int(c), int(r) + 1, int(c) + 1, False))
    return boxes
