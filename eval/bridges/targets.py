"""What SAE features are compared with: per-study targets and maps of the reference methods,
planted findings and labeler labels, aligned with the store's studies.

A *target* is one number per study: a CSR concept score (``csr:edema``), an INSIGHT image
score (``insight:edema``), a planted finding (``finding:edema``, 0/1), a labeler label
(``label:Edema``, 0/1) or a radiomic feature's usage (``radiomics:<feature>``). Method targets
exist on the method's test studies only (the studies it wrote maps for).

Method folders are checked against the store: a folder sharing no study with the store is an
error naming the fix; studies only one side holds are counted (``n_not_in_store`` /
``missing``), never guessed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eval.methods.io import CFG, MAPS, METRICS, MODEL, load_safetensors
from eval.methods.masks import study_findings
from radinterp.data.study import Study
from radinterp.errors import InputError
from radinterp.labels import positive_labels

log = logging.getLogger(__name__)

MAP_KEYS = {"csr": ("concept_maps", "concept_scores", "concepts"),
            "insight": ("heatmap", "score", "findings"),
            "radiomics": (None, "usage", None)}
"""Method -> (map tensor, per-study score tensor, metadata key naming the rows)."""


@dataclass
class Target:
    """One number per study to associate SAE features with."""

    name: str
    """``source:name``, e.g. ``csr:edema``."""
    source: str
    """csr, insight, radiomics, finding or label."""
    binary: bool
    """0/1 values (AUROC defined) or continuous scores (rank correlation)."""
    values: dict[str, float]
    """Study id -> value (only studies the target exists on)."""


@dataclass
class MethodRun:
    """One reference-method folder, restricted to the store's studies."""

    method: str
    """csr, insight or radiomics (from its cfg.json)."""
    root: Path
    """The folder."""
    names: list[str]
    """Row names of its maps / scores (concepts, findings or radiomic features)."""
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    """Study id -> (len(names),) per-study scores."""
    maps: dict[str, np.ndarray] = field(default_factory=dict)
    """Study id -> (len(names), n_side, n_side) maps (csr, insight)."""
    n_not_in_store: int = 0
    """Studies with maps that the store does not hold (skipped)."""
    data: str | None = None
    """The study folder / .jsonl the method was run on (its cfg.json)."""


def load_method(root: str | Path, store_ids: set[str], progress: bool = False) -> MethodRun:
    """Read a finished method run's per-study scores and maps for the studies the store holds."""
    from tqdm.auto import tqdm

    root = Path(root)
    if not (root / CFG).is_file() or not (root / METRICS).is_file():
        raise InputError(f"{root} is not a finished reference-method run (no cfg.json / metrics.json)",
                         f"run `radinterp method NAME --data DATA --out {root}` first")
    cfg = json.loads((root / CFG).read_text())
    method = str(cfg.get("method", ""))
    if method not in MAP_KEYS:
        raise InputError(f"{root} holds a {method!r} run, which the bridge does not read",
                         f"pass runs of {', '.join(MAP_KEYS)}")
    map_key, score_key, names_key = MAP_KEYS[method]
    files = sorted((root / MAPS).glob("*.safetensors"))
    if not files:
        raise InputError(f"{root} holds no per-study maps", f"rerun the {method} method into it")
    run = MethodRun(method, root, [], data=cfg.get("data"))
    for path in tqdm(files, desc=f"bridge: {method} maps", disable=not progress):
        tensors, meta = load_safetensors(path)
        sid = str(meta.get("study_id"))
        if sid not in store_ids:
            run.n_not_in_store += 1
            continue
        names = list(meta.get(names_key, [])) if names_key else _model_features(root)
        if not run.names:
            run.names = names
        run.scores[sid] = tensors[score_key].float().numpy()
        if map_key:
            run.maps[sid] = tensors[map_key].float().numpy()
    if not run.scores:
        raise InputError(f"none of the {len(files)} studies {root} wrote maps for is in the store "
                         "(the method was run on other studies)",
                         "run the method on the studies the store was captured from")
    if run.n_not_in_store:
        log.warning("%s: %d studies with maps are not in the store (skipped)", root, run.n_not_in_store)
    return run


def _model_features(root: Path) -> list[str]:
    from safetensors import safe_open

    with safe_open(str(root / MODEL), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("radinterp", "{}"))
    return [str(n) for n in meta.get("features", [])]


def method_targets(run: MethodRun) -> list[Target]:
    """One continuous target per row name of ``run`` (its per-study score)."""
    out = []
    for j, name in enumerate(run.names):
        out.append(Target(f"{run.method}:{name}", run.method, False,
                          {s: float(v[j]) for s, v in run.scores.items()}))
    return out


def study_targets(studies: Sequence[Study], min_positives: int = 2) -> list[Target]:
    """Planted findings (or positive labels off phantoms) and labeler labels of ``studies``,
    each with at least ``min_positives`` positives and as many negatives."""
    found = {s.study_id: set(study_findings(s)) for s in studies}
    labels = {s.study_id: set(positive_labels(s.labels or {})) for s in studies}
    out = []
    for source, sets in (("finding", found), ("label", labels)):
        names = sorted(set().union(*sets.values())) if sets else []
        for name in names:
            vals = {sid: float(name in have) for sid, have in sets.items()}
            pos = int(sum(vals.values()))
            if min(pos, len(vals) - pos) >= min_positives:
                out.append(Target(f"{source}:{name}", source, True, vals))
    return out


__all__ = ["MAP_KEYS", "MethodRun", "Target", "load_method", "method_targets", "study_targets"]
