"""CSR's metrics on one split: task macro-F1, concept AUROC, pointing game; and the views of a
trained model (plain, after interactions, baselines) they are computed on.

A :class:`View` is what one variant of the model says about a split: concept maps (max over
active prototypes), concept scores (max of the map) and task logits. Thresholds (multi-label
task classes, concept scores for the simulated rejection) are chosen on validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eval.methods.csr.model import CSRModel, concept_maps, prototype_scores, reweight_maps
from eval.methods.csr.tasks import TaskLabels
from eval.methods.localisation import localisation_scores
from eval.methods.masks import PatchMasks
from radinterp.metrics import auroc_columns, best_f1_threshold, f1_columns, mean_defined


@dataclass
class PartData:
    """One split's inputs."""

    ids: list[str]
    """Study ids, row order of everything else."""
    x: torch.Tensor
    """(N, h, w, d) patch features."""
    concepts: np.ndarray
    """(N, K) bool concept labels."""
    task: TaskLabels
    """Task classes and (N, C) labels."""
    masks: PatchMasks
    """Ground-truth patch masks of the concepts (known where the study has the concept)."""


@dataclass
class View:
    """One model variant's outputs on one split."""

    maps: np.ndarray
    """(N, K, h, w) concept similarity maps."""
    scores: np.ndarray
    """(N, K) concept scores (maximum of the map)."""
    logits: np.ndarray
    """(N, C) task logits."""


@torch.no_grad()
def prototype_maps(model: CSRModel, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """(N, K, M, h, w) similarity maps of every prototype."""
    model.eval()
    return torch.cat([model.maps(xc) for xc in x.split(chunk)])


@torch.no_grad()
def view(model: CSRModel, pmaps: torch.Tensor, weights: torch.Tensor | None = None,
         rejected: torch.Tensor | None = None) -> View:
    """The model's view from prototype maps (N, K, M, h, w), optionally after spatial feedback
    (``weights`` (N, K, 1, h, w)) and concept rejection (``rejected`` (N, K) bool)."""
    active = model.atlas.active
    maps = reweight_maps(pmaps, weights)
    cmaps = concept_maps(maps, active)  # (N, K, h, w)
    logits = model.task_logits(prototype_scores(maps), rejected)
    return View(cmaps.numpy(), cmaps.flatten(2).amax(-1).numpy(), logits.numpy())


def task_thresholds(logits: np.ndarray, task: TaskLabels) -> np.ndarray | None:
    """Per-class logit thresholds with the best validation F1 (multi-label tasks); None for
    exclusive tasks, which take the arg-max class."""
    if task.exclusive:
        return None
    return np.array([best_f1_threshold(task.labels[:, c], logits[:, c]) if task.labels[:, c].any()
                     else np.inf for c in range(logits.shape[1])])


def task_f1(logits: np.ndarray, task: TaskLabels, thresholds: np.ndarray | None) -> dict[str, Any]:
    """Macro-F1 over the task classes (undefined classes skipped) and each class's F1."""
    if task.exclusive:
        pred = np.eye(logits.shape[1], dtype=bool)[logits.argmax(1)]
    else:
        assert thresholds is not None
        pred = logits >= thresholds[None, :]
    per = [f1_columns(pred[:, c:c + 1], task.labels[:, c])[0] for c in range(logits.shape[1])]
    per_class = {name: (None if np.isnan(v) else float(v)) for name, v in zip(task.classes, per)}
    return {"macro_f1": mean_defined(per_class.values()), "per_class": per_class}


def concept_auroc(scores: np.ndarray, concepts: np.ndarray, names: list[str]) -> dict[str, Any]:
    """AUROC of each concept's score against its labels (None with one class only) and mean."""
    per = {name: (None if np.isnan(a) else float(a)) for name, a in
           zip(names, [auroc_columns(scores[:, k:k + 1], concepts[:, k])[0] for k in range(len(names))])}
    return {"mean": mean_defined(per.values()), "per_concept": per}


def pointing(maps: np.ndarray, part: PartData) -> dict[str, Any]:
    """Pointing game over (study, concept) pairs with the concept and its mask: the mean over
    all pairs, the mean over concepts, per concept, and the pairs skipped without a mask."""
    tallies = localisation_scores(maps, part.masks, part.concepts)
    hits = [h for t in tallies.values() for h in t.pointing]
    per = {name: t.summary() for name, t in tallies.items()}
    return {
        "pointing_game": float(np.mean(hits)) if hits else None,
        "pointing_game_concept_mean": mean_defined(p["pointing_game"] for p in per.values()),
        "n_scored": len(hits),
        "n_skipped_no_mask": sum(p["n_skipped_no_mask"] for p in per.values()),
        "n_outside_crop": sum(p["n_outside_crop"] for p in per.values()),
        "per_concept": {k: {"pointing_game": v["pointing_game"], "n_scored": v["n_scored"],
                            "n_skipped_no_mask": v["n_skipped_no_mask"]} for k, v in per.items()},
    }


def chance_pointing(part: PartData) -> float | None:
    """Expected pointing game of a uniformly random patch: mean share of target patches."""
    target = part.masks.target()
    rows = [target[i, k].mean() for i, k in zip(*np.nonzero(part.concepts & part.masks.known))
            if target[i, k].any()]
    return float(np.mean(rows)) if rows else None


def summarise(v: View, part: PartData, names: list[str], thresholds: np.ndarray | None) -> dict[str, Any]:
    """All three metrics of one view."""
    return {"task": task_f1(v.logits, part.task, thresholds),
            "concept_auroc": concept_auroc(v.scores, part.concepts, names),
            "localisation": pointing(v.maps, part)}


def headline(result: dict[str, Any]) -> dict[str, float | None]:
    """The three headline numbers of a :func:`summarise` result."""
    return {"task_macro_f1": result["task"]["macro_f1"],
            "concept_auroc": result["concept_auroc"]["mean"],
            "pointing_game": result["localisation"]["pointing_game"]}
