"""Everything a steering run needs, loaded and checked before anything is generated: the model,
the SAE (right site and width), the store, the held-out studies and their split, the features
picked for each finding, and the residual scale."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from radinterp.errors import InputError
from steering.directions import LabelTable, check_feature
from steering.methods import Resources
from steering.selection import measure_effects, pick, rank_by_auroc, study_max_codes

log = logging.getLogger(__name__)

EFFECT_CANDIDATES, EFFECT_STUDIES = 5, 6
"""Effect selection: the top latents by AUROC it measures, on this many selection studies."""


def default_labels() -> list[str]:
    """Labels scored for collateral: every phantom finding's label."""
    from radinterp.data.phantoms.config import FINDING_ORDER
    from radinterp.data.phantoms.findings import finding_label

    return list(dict.fromkeys(finding_label(f) for f in FINDING_ORDER))


@dataclass
class Env:
    """A prepared run."""

    res: Resources
    splits: dict[str, list]
    """``select`` / ``test`` -> held-out Study records."""
    labels: list[str]
    """Labels scored (target and collateral)."""
    features_for: dict[str, dict[str, int]] = field(default_factory=dict)
    """Finding -> selection (auroc / effect) -> feature."""
    selection_info: dict = field(default_factory=dict)
    """Finding -> candidates with their AUROCs and effects (JSON)."""


def _site(cfg, sae, store) -> str:
    if cfg.site:
        return cfg.site
    if sae is not None and getattr(sae.cfg, "site", None):
        return sae.cfg.site
    if store is not None and len(store.sites) == 1:
        return store.sites[0]
    raise InputError("no site to steer at", "pass --site lm.blocks.N.resid_post")


def prepare(cfg, adapter=None) -> Env:
    from radinterp.data.sources import open_studies
    from radinterp.models import load_adapter
    from radinterp.sae import load_sae
    from radinterp.store import open_store

    sae = load_sae(cfg.sae) if cfg.sae else None
    store = open_store(cfg.acts) if cfg.acts else None
    for f in cfg.features:
        if sae is None:
            raise InputError("--feature steers an SAE latent but no SAE was given", "pass --sae SAE_FOLDER")
        check_feature(sae, f)
    if adapter is None:
        adapter = load_adapter(cfg.model, dtype=getattr(torch, cfg.dtype))
    site = _site(cfg, sae, store)
    if store is not None and site not in store.sites:
        raise InputError(f"the store {cfg.acts} holds {store.sites}, not {site}", f"pass --acts captured at {site}")
    labels = default_labels()
    for f in cfg.findings:
        if f not in labels:
            labels.append(f)
    table = None
    store_ids: set[str] = set()
    if store is not None:
        store_studies = store.open_studies()
        store_ids = {s.study_id for s in store_studies}
        table = LabelTable.from_studies(store_studies, labels)
    held = [s for s in open_studies(cfg.data) if s.study_id not in store_ids]
    if len(held) < 2:
        raise InputError(f"{cfg.data} holds {len(held)} studies outside the store",
                         "pass --data with held-out studies (not captured into --acts)")
    rng = np.random.default_rng(cfg.seed)
    held = [held[i] for i in sorted(rng.permutation(len(held))[: cfg.n])]
    order = rng.permutation(len(held))
    half = len(held) // 2
    splits = {"select": [held[i] for i in sorted(order[:half])], "test": [held[i] for i in sorted(order[half:])]}
    res = Resources.create(adapter, sae=sae, site=site, store=store, studies=held, labels=table)
    env = Env(res, splits, labels)
    sae_methods = [m for m in cfg.methods if m in ("add", "clamp", "ablate")]
    if sae_methods and cfg.findings and cfg.selection:
        _select_features(env, cfg)
    return env


def _select_features(env: Env, cfg) -> None:
    res = env.res
    if res.store is None:
        raise InputError("--finding with an SAE method picks the feature from labelled residuals",
                         "pass --acts STORE (or --feature F)")
    codes = study_max_codes(res.store, res.sae, res.site, res.labels.study_ids)
    for finding in cfg.findings:
        cands = rank_by_auroc(res.store, res.sae, res.site, res.labels, finding, seed=cfg.seed, codes=codes,
                              top=EFFECT_CANDIDATES)
        if "effect" in cfg.selection:
            without = [s for s in env.splits["select"] if not _has(s, finding)] or env.splits["select"]
            measure_effects(res.adapter, res.sae, res.site, res.stats, without[:EFFECT_STUDIES], finding, cands,
                            where=cfg.where, batch_size=cfg.batch_size)
        env.features_for[finding] = {how: pick(cands, how).feature for how in cfg.selection}
        env.selection_info[finding] = {"picked": env.features_for[finding],
                                       "candidates": [vars(c) for c in cands]}
        log.info("%s: features %s", finding, env.features_for[finding])


def _has(study, label: str) -> bool:
    from radinterp.labels import is_positive

    return is_positive(study.labels, label)
