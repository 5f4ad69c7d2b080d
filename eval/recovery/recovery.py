"""Planted-finding recovery of a trained SAE beside its baselines, per scope.

:func:`evaluate_recovery` takes the activations of phantom studies per scope (from a store:
:func:`scopes_from_store`; or the image prefix capture), optionally their healthy twins' image
activations, a trained SAE and the studies, and for each scope (image, text) and finding
scores the trained SAE, a random SAE of the same shape and sparsity, and a linear probe:
held-out AUROC, held-out firing F1, mask share (image) and the counterfactual drop rate
(image, with twins). :func:`summarize` gives the margins the issue's targets are stated in.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch

from eval.recovery.baselines import LinearProbe
from radinterp.sae.baselines import mean_l0, random_like
from eval.recovery.counterfactual import drop_rate, mask_share, patch_masks, twin_scores
from eval.recovery.metrics import (
    SCOPES,
    ScopeActs,
    load_scope,
    match_latents,
    pooled_residuals,
    split_studies,
    study_max,
    study_mean,
)
from radinterp.config import BaseConfig
from radinterp.data.study import Study

log = logging.getLogger(__name__)


@dataclass
class RecoveryConfig(BaseConfig):
    """How recovery is measured."""

    scopes: tuple[str, ...] = ("image", "text")
    """Position scopes scored apart (``SCOPES`` names)."""
    split_seed: int = 0
    """Seed of the selection / held-out split of the studies."""
    select_frac: float = 0.5
    """Share of studies on which latents are chosen (and the probe is fitted)."""
    random_mode: str = "topk"
    """Sparsity of the random SAE: ``topk`` (per token) or ``threshold`` (one scalar)."""
    random_seed: int = 0
    """Seed of the random SAE's directions."""
    probe_l2: float = 1e-2
    """L2 penalty of the linear probe (on standardised features)."""
    min_drop: float = 0.5
    """A latent falls on a twin pair when its max drops by at least this share."""
    probe_sees: float = 0.9
    """A finding counts as seen by the layer when the probe's held-out image AUROC >= this."""
    min_positives: int = 3
    """Skip findings with fewer positive studies than this in either half."""
    image_size: int | None = None
    """Adapter image side (mask -> patch grid); None reads it from the store's manifest."""
    patch_size: int | None = None
    """Adapter patch side in pixels; None reads it from the store's manifest."""

    def __post_init__(self) -> None:
        self.scopes = tuple(self.scopes)
        bad = [s for s in self.scopes if s not in SCOPES]
        if bad:
            raise ValueError(f"unknown scopes {bad}; valid scopes: {', '.join(SCOPES)}")
        if not 0 < self.select_frac < 1:
            raise ValueError(f"select_frac must be in (0, 1), got {self.select_frac}")
        if self.image_size and self.patch_size and self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size "
                             f"{self.patch_size}; pass the adapter's own values")


def planted(studies: list[Study], findings: list[str] | None = None) -> tuple[list[str], dict]:
    """(findings, study id -> set of findings planted in the current image)."""
    out = {}
    for s in studies:
        got = s.meta.get("findings")
        if got is None:
            raise ValueError(f"study {s.study_id!r} has no meta['findings']; recovery needs "
                             "phantom folders (radinterp phantoms --out DIR)")
        out[s.study_id] = set(got)
    names = findings or sorted(set().union(*out.values()))
    return list(names), out


def patch_grid(store, cfg: RecoveryConfig | None = None) -> tuple[int, int]:
    """(image_size, patch_size): the config's, else the capturing adapter's from the manifest."""
    cfg = cfg or RecoveryConfig()
    adapter = store.manifest.get("config", {}).get("adapter", {})
    size, patch = cfg.image_size or adapter.get("image_size"), cfg.patch_size or adapter.get("patch_size")
    if not size or not patch:
        raise ValueError(f"{store.root} does not record the adapter's image_size/patch_size; "
                         "pass RecoveryConfig(image_size=..., patch_size=...)")
    return int(size), int(patch)


def _score_encoder(encoder, name: str, sa: ScopeActs, y: np.ndarray, sel, held, *,
                   probe_col: int | None = None) -> dict:
    scores = study_mean(encoder, sa) if probe_col is not None else study_max(encoder, sa)
    m = match_latents(scores, y, sel, held, fixed=probe_col)
    return {"name": name, **asdict(m), "_scores": scores}


def scopes_from_store(store, site: str, cfg: RecoveryConfig) -> dict[str, ScopeActs]:
    """Each of ``cfg.scopes`` read from one store (see :func:`eval.recovery.metrics.load_scope`)."""
    return {scope: load_scope(store, site, scope) for scope in cfg.scopes}


def evaluate_recovery(scopes: dict[str, ScopeActs], sae, studies: list[Study], *,
                      twins: ScopeActs | None = None, grid: tuple[int, int] | None = None,
                      cfg: RecoveryConfig | None = None, findings: list[str] | None = None) -> dict:
    """Recovery of every planted finding by ``sae``, a random SAE and a probe, per scope.

    ``scopes``: scope name -> its activations (``scopes_from_store`` or the image prefix
    capture); ``twins``: the healthy twins' image activations; ``grid``: (image_size,
    patch_size) of the adapter, needed for the image scope's mask share."""
    cfg = cfg or RecoveryConfig()
    names, truth = planted(studies, findings)
    by_id = {s.study_id: s for s in studies}
    result: dict = {"cfg": cfg.to_dict(), "scopes": {}}
    for scope, sa in scopes.items():
        missing = [sid for sid in sa.study_ids if sid not in by_id]
        if missing:
            raise ValueError(f"{len(missing)} studies of the store are not in the given studies "
                             f"(e.g. {missing[0]!r}); pass the phantom folder it was captured from")
        sel, held = split_studies(sa.study_ids, cfg.split_seed, cfg.select_frac)
        l0 = mean_l0(sae, sa.acts)
        rand = random_like(sae, sa.acts, target_l0=l0, mode=cfg.random_mode, seed=cfg.random_seed)
        Y = np.array([[f in truth[sid] for f in names] for sid in sa.study_ids], bool)  # (n, F)
        keep = [j for j, f in enumerate(names)
                if min(Y[sel, j].sum(), Y[held, j].sum()) >= cfg.min_positives]
        probe = LinearProbe(sa.acts.shape[1], len(names)).fit(
            pooled_residuals(sa)[torch.from_numpy(sel)], torch.from_numpy(Y[sel]).float(),
            l2=cfg.probe_l2)
        scope_out = {"n_studies": sa.n_studies, "n_rows": int(sa.acts.shape[0]),
                     "l0_trained": l0, "l0_random": mean_l0(rand, sa.acts), "findings": []}
        cur = {"trained": None, "random": None}
        twin = {}
        masks = known = None
        if scope == "image":
            st = [by_id[sid] for sid in sa.study_ids]
            size, patch = grid or (cfg.image_size, cfg.patch_size)
            if size and patch:
                masks, known = patch_masks(st, names, size, patch)
            if twins is not None:
                twin = {"trained": twin_scores(sae, sa, twins), "random": twin_scores(rand, sa, twins)}
        for j in keep:
            y = Y[:, j]
            row: dict = {"finding": names[j], "n_pos_held": int(y[held].sum()),
                         "n_held": int(held.size)}
            p = _score_encoder(probe, "probe", sa, y, sel, held, probe_col=j)
            row["probe"] = {k: v for k, v in p.items() if not k.startswith("_")}
            for label, enc in (("trained", sae), ("random", rand)):
                if cur[label] is None:
                    cur[label] = study_max(enc, sa)
                m = match_latents(cur[label], y, sel, held)
                r = asdict(m)
                pos = held[y[held]]
                if masks is not None:
                    pm = pos[known[pos, j]]
                    r["mask_share"], r["mask_area"], r["mask_studies"] = mask_share(
                        enc, m.latent, sa, pm, masks[pm, :, j])
                if label in twin:
                    r["cf_drop"], r["cf_pairs"] = drop_rate(
                        cur[label][pos, m.latent], twin[label][pos, m.latent], cfg.min_drop)
                row[label] = r
            scope_out["findings"].append(row)
        result["scopes"][scope] = scope_out
        log.info("recovery %s: %d findings scored", scope, len(scope_out["findings"]))
    result["summary"] = summarize(result, cfg.probe_sees)
    return result


def _mean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None and not np.isnan(x)]
    return float(np.mean(xs)) if xs else None


def summarize(result: dict, probe_sees: float = 0.9) -> dict:
    """Means over the findings the probe sees on image positions (held-out AUROC >= probe_sees):
    trained vs random firing F1, AUROC, mask share, counterfactual drop rate."""
    image = result["scopes"].get("image")
    seen = {r["finding"] for r in image["findings"] if r["probe"]["auroc"] >= probe_sees} if image else set()
    out: dict = {"probe_sees": sorted(seen)}
    for scope, s in result["scopes"].items():
        rows = [r for r in s["findings"] if r["finding"] in seen]
        d: dict = {"n_findings": len(rows)}
        for key in ("f1", "auroc", "mask_share", "cf_drop"):
            t = _mean([r["trained"].get(key) for r in rows])
            rnd = _mean([r["random"].get(key) for r in rows])
            d[key] = {"trained": t, "random": rnd,
                      "margin": None if t is None or rnd is None else t - rnd}
        d["f1_wins"] = sum(r["trained"]["f1"] > r["random"]["f1"] for r in rows)
        d["probe_auroc"] = _mean([r["probe"]["auroc"] for r in rows])
        out[scope] = d
    return out
