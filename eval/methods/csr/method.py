"""CSR (arXiv 2503.06873) as a reference method: ``radinterp method csr --data DIR --out OUT``.

Concepts are the findings with at least ``min_positives`` train studies (phantoms: the planted
findings; real data: the positive labels). Trains the three stages on the train split (model
selection on validation), refines the atlas with the simulated doctor, then writes

- ``model.safetensors``: the model's tensors plus ``refined.*`` (the refined atlas's active
  prototypes and task head); metadata: config, concepts, task classes, prototype images;
- ``maps/<study>.safetensors`` per test study: ``concept_maps`` (K, n, n), ``prototype_maps``
  (K, M, n, n), ``concept_maps_refined``, ``cam`` (with baselines), ``concept_maps_user``
  (with user feedback), ``concept_scores`` (K,);
- ``metrics.json``: see :mod:`eval.methods.csr.measure`.

A rerun after a crash loads the saved model and writes only the missing maps.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from eval.methods.base import METHODS, MethodContext, ReferenceMethod
from eval.methods.csr.config import CSRConfig
from eval.methods.csr.evaluate import PartData
from eval.methods.csr.interact import Box, reject_concepts
from eval.methods.csr.measure import as_split, measure, refined_model
from eval.methods.csr.model import CSRModel
from eval.methods.csr.tasks import TASKS
from eval.methods.csr.train import train_csr
from eval.methods.io import MethodOutput
from eval.methods.masks import study_findings
from radinterp.errors import InputError

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


def load_parts(ctx: MethodContext, cfg: CSRConfig) -> tuple[list[str], dict[str, PartData]]:
    """Concept names and each split's tensors, labels and masks (studies without features
    are left out; the frame lists them as skipped)."""
    feats = ctx.features
    names = ctx.findings(cfg.min_positives)
    if not names:
        raise InputError(f"no finding has {cfg.min_positives} positive studies in the train split",
                         "pass more studies or a lower --opt min_positives")
    parts = {}
    for part in PARTS:
        ids = [s for s in ctx.split.part(part) if s not in feats.skipped]
        if not ids:
            raise InputError(f"the {part} split holds no study with patch features",
                             "pass more studies or change --split")
        concepts = ctx.labels(ids, names)
        task = TASKS.get(cfg.task)([study_findings(ctx.by_id[s]) for s in ids], names)
        parts[part] = PartData(ids, feats.select(ids), concepts, task,
                               ctx.patch_masks(ids, names, concepts))
    return names, parts


def save_csr(output: MethodOutput, model: CSRModel, refined: CSRModel, meta: dict[str, Any]) -> Path:
    """The model's tensors and the refined atlas's active prototypes and task head."""
    tensors = dict(model.state_dict())
    tensors["refined.atlas.active"] = refined.atlas.active
    tensors.update({f"refined.task_head.{k}": v for k, v in refined.task_head.state_dict().items()})
    return output.save_model(tensors, meta)


def load_csr(output: MethodOutput) -> tuple[CSRModel, CSRModel, dict[str, Any]]:
    """(model, refined model, metadata) from ``OUT/model.safetensors``."""
    tensors, meta = output.load_model()
    cfg = CSRConfig.from_dict({k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    model = CSRModel(meta["d_in"], len(meta["concepts"]), len(meta["classes"]), cfg)
    model.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("refined.")})
    refined = CSRModel(meta["d_in"], len(meta["concepts"]), len(meta["classes"]), cfg)
    refined.load_state_dict({k: tensors.get(f"refined.{k}", v) for k, v in model.state_dict().items()})
    return model.eval(), refined.eval(), meta


def user_interactions(cfg: CSRConfig, names: list[str], test_ids: list[str], n_side: int,
                      ) -> tuple[list[tuple[int, int]], torch.Tensor, list[Box]] | None:
    """The options' interactions (``reject``, ``prune``, ``feedback``) on the test split, or
    None when none is given. Unknown concepts and studies raise naming the valid ones."""
    if not (cfg.reject or cfg.prune or cfg.feedback):
        return None
    col = {n: k for k, n in enumerate(names)}
    row = {s: i for i, s in enumerate(test_ids)}

    def concept(name: str) -> int:
        if name not in col:
            raise InputError(f"concept {name!r} is not one of this run's concepts",
                             f"use one of: {', '.join(names)}")
        return col[name]

    pruned = []
    for item in cfg.prune:
        name, _, idx = item.rpartition(":")
        if int(idx) >= cfg.n_prototypes:
            raise InputError(f"prune item {item!r}: the atlas has {cfg.n_prototypes} prototypes "
                             "per concept", f"pass an index below {cfg.n_prototypes}")
        pruned.append((concept(name), int(idx)))
    per_study: dict[int, list[int]] = {}
    boxes: list[Box] = []
    if cfg.feedback:
        path = Path(cfg.feedback)
        if not path.is_file():
            raise InputError(f"feedback file {path} does not exist", "pass --opt feedback=FILE.json")
        data = json.loads(path.read_text())
        for sid, concepts in (data.get("reject") or {}).items():
            if sid not in row:
                raise InputError(f"feedback names study {sid!r}, which is not in the test split",
                                 "give feedback on test studies (see the maps/ folder)")
            per_study.setdefault(row[sid], []).extend(concept(c) for c in concepts)
        for b in data.get("boxes") or []:
            if b.get("study_id") not in row:
                raise InputError(f"feedback box on study {b.get('study_id')!r}, which is not in "
                                 "the test split", "give feedback on test studies (see maps/)")
            r0, c0, r1, c1 = (int(v) for v in b["box"])
            if r1 > n_side or c1 > n_side:
                raise InputError(f"box {b['box']} exceeds the {n_side}x{n_side} patch grid",
                                 f"pass rows and columns up to {n_side}")
            boxes.append(Box(row[b["study_id"]], concept(b["concept"]), r0, c0, r1, c1,
                             b.get("sign", "positive") == "positive"))
    rejected = reject_concepts(len(test_ids), len(names), [concept(c) for c in cfg.reject])
    rejected |= reject_concepts(len(test_ids), len(names), per_study)
    return pruned, rejected, boxes


def run_csr(cfg: CSRConfig, ctx: MethodContext) -> dict[str, Any]:
    """Train (or load), refine, measure and write maps; returns the metrics."""
    cfg = dataclasses.replace(cfg, seed=cfg.seed + ctx.seed)
    names, parts = load_parts(ctx, cfg)
    out = ctx.output
    if out.has_model():
        model, refined, meta = load_csr(out)
        log.info("csr: loaded the trained model from %s", out.root)
    else:
        model, losses = train_csr(as_split(parts["train"]), as_split(parts["val"]), cfg,
                                  parts["train"].task.exclusive, ctx.progress)
        refined, _, hits = refined_model(model, parts, cfg, ctx.progress)
        sources = [[parts["train"].ids[i] if i >= 0 else None for i in row]
                   for row in model.atlas.source.tolist()]
        meta = {"config": cfg.to_dict(), "concepts": names, "classes": parts["train"].task.classes,
                "exclusive": parts["train"].task.exclusive, "d_in": int(parts["train"].x.shape[-1]),
                "prototype_images": sources, "losses": losses,
                "refinement_hit_rates": [[None if np.isnan(h) else float(h) for h in r] for r in hits]}
        save_csr(out, model, refined, meta)
    pruned = [tuple(p) for p in (~refined.atlas.active).nonzero().tolist()]
    hits = np.array(meta["refinement_hit_rates"], dtype=float)  # None -> NaN
    user = user_interactions(cfg, names, parts["test"].ids, parts["test"].x.shape[1])
    metrics, maps = measure(model, refined, pruned, hits, parts, names, cfg, user)
    write_maps(out, parts["test"].ids, maps, names, ctx.progress)
    test, train = parts["test"], parts["train"]
    return {"concepts": names, "task": {"name": cfg.task, "classes": train.task.classes,
                                        "exclusive": train.task.exclusive},
            "positives": {p: dict(zip(names, parts[p].concepts.sum(0).tolist())) for p in PARTS},
            "task_positives": {p: dict(zip(train.task.classes, parts[p].task.labels.sum(0).tolist()))
                               for p in PARTS},
            "prototype_images": meta["prototype_images"], "losses": meta["losses"],
            "n_test": len(test.ids), **metrics}


def write_maps(out: MethodOutput, ids: list[str], maps: dict[str, np.ndarray], names: list[str],
               progress: bool) -> None:
    """One file per test study (studies already written are kept)."""
    for i, sid in enumerate(tqdm(ids, desc="csr maps", disable=not progress, leave=False)):
        if out.has_map(sid):
            continue
        out.save_map(sid, {k: torch.from_numpy(np.ascontiguousarray(v[i])).float() for k, v in maps.items()},
                     {"concepts": names})


@METHODS.register("csr")
class CSR(ReferenceMethod):
    """Concept-based similarity reasoning: concept model, prototype atlas, similarity task head."""

    name = "csr"
    Options = CSRConfig

    def run(self, ctx: MethodContext) -> dict[str, Any]:
        return run_csr(self.options, ctx)
