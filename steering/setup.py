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
STEERED_STUDIES = 6
"""Steered selection: selection-split studies without the finding each candidate is generated on."""


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
    candidates: dict[str, list] = field(default_factory=dict)
    """Finding -> :class:`steering.selection.Candidate` list (the top latents by AUROC; one site)."""
    resources: list[Resources] = field(default_factory=list)
    """One per site steered (``res`` first); default ``[res]``."""

    def __post_init__(self) -> None:
        self.resources = self.resources or [self.res]


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

    saes = [load_sae(p) for p in cfg.sae.split(",")] if cfg.sae else []
    store = open_store(cfg.acts) if cfg.acts else None
    sites = list(cfg.sites) or [_site(cfg, saes[0] if saes else None, store)]
    sae_at = _saes_by_site(saes, sites)
    for f in cfg.features:
        if not saes:
            raise InputError("--feature steers an SAE latent but no SAE was given", "pass --sae SAE_FOLDER")
        if len(sites) > 1:
            raise InputError("--feature with several layers (each layer has its own SAE)",
                             "pass --finding NAME (a feature is picked per layer) or one layer")
        check_feature(saes[0], f)
    if any(m in ("add", "clamp", "ablate") for m in cfg.methods) and saes:
        missing = [site for site in sites if site not in sae_at]
        if missing:
            raise InputError(f"no SAE trained at {missing[0]}", "pass one --sae folder per layer, comma-separated")
    if adapter is None:
        adapter = load_adapter(cfg.model, dtype=getattr(torch, cfg.dtype))
    for site in sites:
        if store is not None and site not in store.sites:
            raise InputError(f"the store {cfg.acts} holds {store.sites}, not {site}",
                             f"pass --acts captured at {site}")
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
    perm = rng.permutation(len(held))
    chosen = sorted(perm[: cfg.n])
    if cfg.n_with and "ablate" in cfg.methods:  # studies with each target, for ablation
        for finding in cfg.findings:
            extra = [i for i in perm[cfg.n:] if i not in chosen and _has(held[i], finding)][: cfg.n_with]
            chosen = sorted(chosen + extra)
    held = [held[i] for i in chosen]
    order = rng.permutation(len(held))
    half = len(held) // 2
    splits = {"select": [held[i] for i in sorted(order[:half])], "test": [held[i] for i in sorted(order[half:])]}
    resources = [Resources.create(adapter, sae=sae_at.get(site), site=site, store=store, studies=held, labels=table)
                 for site in sites]
    env = Env(resources[0], splits, labels, resources=resources)
    sae_methods = [m for m in cfg.methods if m in ("add", "clamp", "ablate")]
    if sae_methods and cfg.findings and cfg.selection:
        _select_features(env, cfg)
    return env


def _saes_by_site(saes: list, sites: list[str]) -> dict:
    """Site -> SAE: one SAE for one site (checked against it later), else each SAE at the site
    its config names."""
    if len(sites) == 1 and len(saes) <= 1:
        return {sites[0]: saes[0]} if saes else {}
    out = {}
    for sae in saes:
        site = getattr(sae.cfg, "site", None)
        if site not in sites or site in out:
            raise InputError(f"an SAE trained at {site} for layers at {sites}",
                             "pass one SAE per layer (comma-separated), each trained at its layer")
        out[site] = sae
    return out


def _select_features(env: Env, cfg) -> None:
    if len(env.resources) > 1:
        return _select_per_site(env, cfg)
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
        env.candidates[finding] = cands
        env.features_for[finding] = {how: pick(cands, how).feature for how in cfg.selection if how != "steered"}
        env.selection_info[finding] = {"picked": env.features_for[finding],
                                       "candidates": [vars(c) for c in cands]}
        log.info("%s: features %s", finding, env.features_for[finding])


def _select_per_site(env: Env, cfg) -> None:
    """Several sites: each site's feature by AUROC in its own SAE; the pick is a tuple (site order)."""
    per_site = {}
    for res in env.resources:
        if res.store is None or res.sae is None:
            raise InputError("--finding with an SAE method picks the feature from labelled residuals",
                             "pass --acts STORE captured at every layer and one --sae per layer")
        codes = study_max_codes(res.store, res.sae, res.site, res.labels.study_ids)
        per_site[res.site] = {f: rank_by_auroc(res.store, res.sae, res.site, res.labels, f, seed=cfg.seed,
                                               codes=codes, top=1) for f in cfg.findings}
    for finding in cfg.findings:
        pick_ = tuple(per_site[r.site][finding][0].feature for r in env.resources)
        env.features_for[finding] = {"auroc": pick_}
        env.selection_info[finding] = {
            "picked": {"auroc": list(pick_)},
            "per_site": {site: [vars(c) for c in v[finding]] for site, v in per_site.items()}}
        log.info("%s: features %s at %s", finding, pick_, [r.site for r in env.resources])


def _has(study, label: str) -> bool:
    from radinterp.labels import is_positive

    return is_positive(study.labels, label)
