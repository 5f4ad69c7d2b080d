"""Everything CSR reports on the test split: the model, the model after each (simulated or
user) interaction, and the baselines beside them.

Variants (each scored by :func:`~eval.methods.csr.evaluate.summarise`):

- ``csr``: the trained model;
- ``atlas_refinement``: prototypes pruned by the simulated doctor on validation, task head
  refitted on the remaining prototypes (a train-time interaction, as in the paper);
- ``concept_rejection``: the simulated doctor rejects concepts a study lacks that score above
  their validation threshold and argue for the prediction (test time; changes the task only);
- ``positive_boxes`` / ``negative_boxes``: spatial feedback (a box around each finding's mask /
  a "not here" box on a peak that misses it), maps and scores recomputed;
- ``user``: the interactions given in the options (``reject``, ``prune``, ``feedback``).

Baselines: the concept model's CAM alone (localisation and concept AUROC), a random-prototype
atlas (same concept model and projector, random prototypes, task head refitted), a uniformly
random patch (pointing game by chance), and the majority task class.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from eval.methods.csr.config import CSRConfig
from eval.methods.csr.evaluate import (
    PartData,
    View,
    chance_pointing,
    concept_auroc,
    headline,
    pointing,
    prototype_maps,
    summarise,
    task_f1,
    task_thresholds,
    view,
)
from eval.methods.csr.interact import (
    Box,
    box_weights,
    concept_support,
    oracle_boxes,
    oracle_rejections,
    prune_prototypes,
    refine_atlas,
)
from eval.methods.csr.model import CSRModel, prototype_scores
from eval.methods.csr.train import CSRSplit, train_task_head
from radinterp.metrics import best_f1_threshold


def as_split(part: PartData) -> CSRSplit:
    return CSRSplit(part.x, torch.from_numpy(part.concepts).float(),
                    torch.from_numpy(part.task.labels).float())


def refined_model(model: CSRModel, parts: dict[str, PartData], cfg: CSRConfig,
                  progress: bool = False) -> tuple[CSRModel, list[tuple[int, int]], np.ndarray]:
    """The simulated atlas refinement: prune on validation, refit the task head on train.
    Returns (refined copy, pruned (concept, prototype) pairs, validation hit rates (K, M))."""
    val = parts["val"]
    pmaps = prototype_maps(model, val.x).numpy()
    pruned, hits = refine_atlas(pmaps, val.masks, val.concepts, model.atlas.active, cfg.prune_min_hit)
    refined = prune_prototypes(copy.deepcopy(model), pruned)
    train_task_head(refined, as_split(parts["train"]), as_split(val), parts["train"].task.exclusive,
                    progress)
    return refined.eval(), pruned, hits


def random_atlas(model: CSRModel, parts: dict[str, PartData], seed: int) -> CSRModel:
    """Baseline: the model with random unit prototypes (all active) and a refitted task head."""
    rand = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        rand.atlas.prototypes.copy_(torch.randn(rand.atlas.prototypes.shape, generator=gen))
        rand.atlas.active.fill_(True)
        rand.atlas.source.fill_(-1)
    train_task_head(rand, as_split(parts["train"]), as_split(parts["val"]),
                    parts["train"].task.exclusive, progress=False)
    return rand.eval()


@torch.no_grad()
def cam_view(model: CSRModel, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The concept model's CAMs (N, K, h, w) and concept logits (N, K)."""
    model.eval()
    _, cam = model.concept(x)
    return cam.numpy(), model.concept.logits(cam).numpy()


def _predicted(logits: np.ndarray, thresholds: np.ndarray | None) -> torch.Tensor:
    """(N, C) bool predicted classes: arg-max (exclusive) or logits over the thresholds."""
    if thresholds is None:
        return torch.from_numpy(np.eye(logits.shape[1], dtype=bool)[logits.argmax(1)])
    return torch.from_numpy(logits >= thresholds[None, :])


def _flips(before: torch.Tensor, after: torch.Tensor, labels: np.ndarray) -> dict[str, int]:
    """Studies whose predicted classes changed, and how many of those were fixed / broken."""
    b, a = before.numpy(), after.numpy()
    changed = (a != b).any(1)
    right_b, right_a = (b == labels).all(1), (a == labels).all(1)
    return {"n_changed": int(changed.sum()), "n_fixed": int((changed & right_a).sum()),
            "n_broken": int((changed & right_b).sum())}


def _variant(v: View, test: PartData, names: list[str], thr, **extra: Any) -> dict[str, Any]:
    return {**extra, **summarise(v, test, names, thr)}


def measure(model: CSRModel, refined: CSRModel, pruned: list[tuple[int, int]], hits: np.ndarray,
            parts: dict[str, PartData], names: list[str], cfg: CSRConfig,
            user: tuple[list[tuple[int, int]], torch.Tensor, list[Box]] | None = None,
            ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metrics, test maps by name: each (N, K, h, w) or (N, K, M, h, w))."""
    val, test = parts["val"], parts["test"]
    pm_val, pm_te = prototype_maps(model, val.x), prototype_maps(model, test.x)
    v_val, base = view(model, pm_val), view(model, pm_te)
    thr = task_thresholds(v_val.logits, val.task)
    shape = tuple(base.maps.shape)
    out: dict[str, Any] = {"csr": summarise(base, test, names, thr)}

    # atlas refinement (train-time: the refined model has its own task head and thresholds)
    ref_thr = task_thresholds(view(refined, pm_val).logits, val.task)
    ref = view(refined, pm_te)
    hit_rates = {names[k]: [None if np.isnan(h) else float(h) for h in hits[k]] for k in range(len(names))}
    inter: dict[str, Any] = {"atlas_refinement": _variant(
        ref, test, names, ref_thr, pruned=[f"{names[k]}:{m}" for k, m in pruned],
        validation_hit_rate=hit_rates)}

    # concept rejection: thresholds of the concept scores on validation
    cthr = np.array([best_f1_threshold(val.concepts[:, k], v_val.scores[:, k]) if val.concepts[:, k].any()
                     else np.inf for k in range(len(names))])
    predicted = _predicted(base.logits, thr)
    support = concept_support(model, prototype_scores(pm_te), predicted, test.task.exclusive)
    rejected = oracle_rejections(base.scores, test.concepts, cthr, support)
    after = view(model, pm_te, rejected=rejected)
    inter["concept_rejection"] = _variant(after, test, names, thr, n_rejected=int(rejected.sum()),
                                          **_flips(predicted, _predicted(after.logits, thr), test.task.labels))
    for key, positive in (("positive_boxes", True), ("negative_boxes", False)):
        boxes = oracle_boxes(base.maps, test.masks, test.concepts, positive)
        w = box_weights(shape, boxes, cfg.box_outside_weight)
        inter[key] = _variant(view(model, pm_te, weights=w), test, names, thr, n_boxes=len(boxes))
    out["interactions"] = inter
    maps = {"concept_maps": base.maps, "concept_maps_refined": ref.maps,
            "prototype_maps": pm_te.numpy(), "concept_scores": base.scores}

    if user is not None:
        u_pruned, u_rejected, u_boxes = user
        u_model = prune_prototypes(copy.deepcopy(model), u_pruned)
        u = view(u_model, pm_te, weights=box_weights(shape, u_boxes, cfg.box_outside_weight),
                 rejected=u_rejected)
        out["user_feedback"] = _variant(u, test, names, thr, pruned=[f"{names[k]}:{m}" for k, m in u_pruned],
                                        n_rejected=int(u_rejected.sum()), n_boxes=len(u_boxes))
        maps["concept_maps_user"] = u.maps

    if cfg.baselines:
        cam, logits = cam_view(model, test.x)
        maps["cam"] = cam
        rand = random_atlas(model, parts, cfg.seed)
        r_thr = task_thresholds(view(rand, prototype_maps(rand, val.x)).logits, val.task)
        train_task = parts["train"].task.labels
        majority = np.repeat(train_task.mean(0, keepdims=True), len(test.ids), 0)
        out["baselines"] = {
            "cam": {"concept_auroc": concept_auroc(logits, test.concepts, names),
                    "localisation": pointing(cam, test)},
            "random_atlas": summarise(view(rand, prototype_maps(rand, test.x)), test, names, r_thr),
            "chance_pointing_game": chance_pointing(test),
            "majority_task": task_f1(majority, test.task, (majority[0] if not test.task.exclusive else None)),
        }
    out["summary"] = _summary(out)
    return out, maps


def _summary(out: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Headline numbers of every variant and baseline, one row each."""
    rows = {"csr": headline(out["csr"])}
    rows.update({f"after {k.replace('_', ' ')}": headline(v) for k, v in out["interactions"].items()})
    if "user_feedback" in out:
        rows["after user feedback"] = headline(out["user_feedback"])
    b = out.get("baselines")
    if b:
        rows["baseline: random-prototype atlas"] = headline(b["random_atlas"])
        rows["baseline: concept-model CAM"] = {
            "task_macro_f1": None, "concept_auroc": b["cam"]["concept_auroc"]["mean"],
            "pointing_game": b["cam"]["localisation"]["pointing_game"]}
        rows["baseline: chance / majority class"] = {
            "task_macro_f1": b["majority_task"]["macro_f1"], "concept_auroc": 0.5,
            "pointing_game": b["chance_pointing_game"]}
    return rows
