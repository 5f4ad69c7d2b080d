"""Steering methods, one registry (:data:`METHODS`), all applied through the core's edit hooks.

A method turns a :class:`SteerSpec` and the shared :class:`Resources` (adapter, site, SAE,
residual scale, activation store) into a :class:`Steering`: edits ``site -> fn(tensor, ctx)``
for :func:`radinterp.hooks.edit` / :func:`radinterp.generation.generate`, and optionally a
rewrite of each study (``prompt``, which edits no activation).

- ``add``: the feature's decoder direction (unit) x ``coef`` x the typical residual norm of
  each position's group (image / text; position 0 and special tokens left out of the norm).
- ``clamp``: the feature set to ``coef`` x its typical active value through the SAE with the
  error term kept: ``h + decode(z') - decode(z)`` = ``h + (value - z_f) W_dec[f]``.
- ``ablate``: the same with the value 0.
- ``diffmean`` / ``diffmean_matched``: a difference-of-means direction (per image slot) added
  like ``add``; plain: with vs without the label; matched: single-finding studies vs normal films
  (or the other findings regressed out).
- ``prompt``: the finding named in the indication, no activation edited.

Controls (random directions of equal norm, the reversed direction) add a prebuilt
:class:`~steering.directions.Direction` like ``add``: :func:`direction_steering`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from radinterp.config import BaseConfig
from radinterp.data.study import Study
from radinterp.edits import SELECTORS, EditContext, EditFn, Where, only
from radinterp.errors import InputError
from radinterp.labels import ALL_LABELS
from radinterp.registry import Registry
from steering.directions import (
    Direction,
    LabelTable,
    SiteStats,
    check_feature,
    diffmean_direction,
    feature_direction,
    group_index,
)

WHERE = ("all", "image", "prompt", "generated")
"""Position selections the CLI offers (any ``radinterp.edits.SELECTORS`` name works in Python)."""


class NonFiniteResidual(ValueError):
    """A steering edit made the residual non-finite (the coefficient is too large)."""


@dataclass
class SteerSpec(BaseConfig):
    """One steering intervention."""

    method: str = "add"
    """A ``METHODS`` name: add, clamp, ablate, diffmean, diffmean_matched, prompt."""
    coef: float = 1.0
    """add / diffmean: multiple of the typical residual norm; clamp: multiple of the
    feature's typical active value (``clamp_value`` overrides); unused by ablate and prompt."""
    where: str = "image"
    """Positions edited: all, image, prompt, generated (a ``SELECTORS`` name)."""
    feature: int | None = None
    """SAE latent (add, clamp, ablate)."""
    finding: str | None = None
    """Label the direction is built for (diffmean*, prompt), e.g. ``Pleural Effusion``."""
    clamp_value: float | None = None
    """clamp: the absolute value to set the feature to (overrides ``coef``)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise InputError(f"unknown steering method {self.method!r}", f"use one of: {', '.join(METHODS.names())}")
        if self.where not in SELECTORS:
            raise InputError(f"unknown position selection {self.where!r}", f"use one of: {', '.join(WHERE)}")
        if not math.isfinite(self.coef):
            raise InputError(f"coefficient {self.coef} is not finite", "pass a finite --coef")
        if self.finding is not None and self.finding not in ALL_LABELS:
            raise InputError(f"unknown finding {self.finding!r}", f"use one of: {', '.join(ALL_LABELS)}")


@dataclass
class Resources:
    """What the methods share: the model, its site, the SAE, the residual scale, the store."""

    adapter: Any
    """A loaded :class:`radinterp.models.Adapter`."""
    site: str
    """Canonical site edited (default: the SAE's)."""
    stats: SiteStats | None
    """Typical residual norm per group at ``site`` (None: only ``prompt`` can be built)."""
    sae: Any = None
    """SAE trained at ``site`` (add, clamp, ablate)."""
    store: Any = None
    """Activation store captured at ``site`` (diffmean; typical feature values)."""
    labels: LabelTable | None = None
    """Reference labels of the store's studies (diffmean)."""
    feature_scale: dict[int, float] = field(default_factory=dict)
    """Feature -> typical active value (clamp's unit); measured on demand from the store."""
    cache: dict = field(default_factory=dict)
    """Built directions, by key."""

    @classmethod
    def create(cls, adapter, *, sae=None, site: str | None = None, store=None, stats: SiteStats | None = None,
               studies: list[Study] | None = None, labels: LabelTable | None = None) -> Resources:
        """Check that ``sae`` fits ``adapter`` at ``site`` and measure the residual scale (from
        ``store``, else a forward over ``studies``)."""
        site = site or (getattr(sae.cfg, "site", None) if sae is not None else None)
        if site is None:
            raise InputError("no site to steer at", "pass site='lm.blocks.N.resid_post' or an SAE whose cfg names one")
        adapter.resolve(site)  # raises on a layer the model lacks
        if sae is not None:
            check_sae(adapter, sae, site)
        if stats is None:
            if store is not None:
                stats = SiteStats.from_store(store, site, set(adapter.tokenizer.all_special_ids))
            elif studies:
                stats = SiteStats.measure(adapter, studies[:4], site)
            else:
                raise InputError("no residual scale for the coefficients",
                                 "pass store= (an activation store at the site) or studies= to measure it")
        return cls(adapter, site, stats, sae, store, labels)

    def require_sae(self, method: str):
        if self.sae is None:
            raise InputError(f"method {method!r} steers an SAE feature but no SAE was given", "pass --sae SAE_FOLDER")
        return self.sae

    def typical_value(self, feature: int) -> float:
        """Median of the feature's non-zero activations in the store (1.0 without a store)."""
        if feature not in self.feature_scale:
            vals = []
            if self.store is not None:
                for _, _, x in self.store.iter_studies(self.site, self.store.studies()[:64]):
                    with torch.no_grad():
                        z = self.sae.encode(x)[:, feature]
                    vals.append(z[z > 0])
            v = torch.cat(vals) if vals else torch.empty(0)
            self.feature_scale[feature] = float(v.median()) if v.numel() else 1.0
        return self.feature_scale[feature]

    def diffmean(self, finding: str, matched: bool) -> Direction:
        key = ("diffmean", finding, matched)
        if key not in self.cache:
            if self.store is None or self.labels is None:
                raise InputError("diffmean needs an activation store and the studies' labels",
                                 "pass --acts STORE captured at the site (its data folder holds the labels)")
            self.cache[key] = diffmean_direction(self.store, self.site, self.labels, finding, matched=matched)
        return self.cache[key]


def check_sae(adapter, sae, site: str) -> None:
    """The SAE was trained at ``site`` on residuals as wide as the model's there."""
    sae_site = getattr(sae.cfg, "site", None)
    if sae_site and sae_site != site:
        raise InputError(f"the SAE was trained at {sae_site}, not {site}",
                         f"pass --site {sae_site} or an SAE trained at {site}")
    width = adapter.site_dim(site)
    if sae.d_in != width:
        raise InputError(f"the SAE reads {sae.d_in}-wide activations but {site} of this model is {width} wide",
                         "pass an SAE trained on this model")


@dataclass
class Steering:
    """What a method does: activation edits and/or a rewrite of each study."""

    edits: dict[str, EditFn] = field(default_factory=dict)
    """Site -> edit for the core's hooks."""
    rewrite: Callable[[Study], Study] | None = None
    """Study -> study (the prompt method); None leaves studies as they are."""
    direction: Direction | None = None
    """The direction added, where one is (reports its name and cosines)."""
    parts: list[Steering] = field(default_factory=list)
    """Per-site steerings this one merges (several sites: ``steering.sites.merge``); else empty."""

    def items(self, studies: list[Study]) -> list[Study]:
        return [self.rewrite(s) for s in studies] if self.rewrite else list(studies)


def _finite(new: torch.Tensor, site: str, what: str) -> torch.Tensor:
    if not bool(torch.isfinite(new).all()):
        raise NonFiniteResidual(f"steering ({what}) made the residual at {site} non-finite; "
                                "pass a smaller --coef")
    return new


def add_edit(direction: Direction, stats: SiteStats, coef: float, where: Where) -> EditFn:
    """``h + coef * norm(group) * unit(group)`` at the ``where`` positions."""
    delta_table = direction.table() * stats.table()[:, None] * float(coef)  # (G, d)
    name = f"{direction.name} x {coef:g}"
    _finite(delta_table, direction.site, name)  # refuse before anything is generated

    def fn(h: torch.Tensor, ctx: EditContext) -> torch.Tensor:  # h: (B, T, d)
        gidx = group_index(ctx, h.shape[0], h.shape[1]).to(h.device)  # (B, T)
        delta = delta_table.to(h.device, h.dtype)[gidx]  # (B, T, d)
        return _finite(h + delta, ctx.site, name)

    return only(where, fn)


def feature_code(sae, feature: int, x: torch.Tensor) -> torch.Tensor:
    """(...,) JumpReLU code of one ``feature`` for residuals ``x`` (..., d): what ``sae.encode``
    gives in that column, computed from the one column."""
    w_enc, b_enc = sae.W_enc[:, feature].detach(), sae.b_enc[feature].detach()  # (d,), ()
    b_dec = sae.b_dec.detach() if sae.cfg.apply_b_dec_to_input else torch.zeros_like(sae.b_dec)
    x = x.to(w_enc.dtype)
    pre = (x - b_dec.to(x.device)) @ w_enc.to(x.device) + b_enc.to(x.device)  # (...,)
    return pre.relu() * (pre > sae.threshold[feature].to(x.device)).to(pre.dtype)


def clamp_edit(sae, feature: int, value: float, where: Where) -> EditFn:
    """Set ``feature`` to ``value`` through the SAE, keeping the error term:
    ``h + (value - z_f(h)) * W_dec[f]`` (exactly ``h`` where ``z_f(h) == value``)."""
    w_dec = sae.W_dec[feature].detach()  # (d,)
    _finite(value * w_dec.float(), str(getattr(sae.cfg, "site", "")), f"clamp feature {feature} to {value:g}")

    def fn(h: torch.Tensor, ctx: EditContext) -> torch.Tensor:  # h: (B, T, d)
        z = feature_code(sae, feature, h)  # (B, T)
        shift = (value - z)[..., None] * w_dec.to(h.device)  # (B, T, d): decode(z') - decode(z)
        return _finite(h + shift.to(h.dtype), ctx.site, f"clamp feature {feature} to {value:g}")

    return only(where, fn)


MethodFn = Callable[[Resources, SteerSpec], Steering]
METHODS: Registry[MethodFn] = Registry("steering method")


def _need_feature(res: Resources, spec: SteerSpec) -> int:
    sae = res.require_sae(spec.method)
    if spec.feature is None:
        raise InputError(f"method {spec.method!r} needs a feature", "pass --feature F or --finding NAME")
    check_feature(sae, spec.feature)
    return int(spec.feature)


def _need_finding(spec: SteerSpec) -> str:
    if spec.finding is None:
        raise InputError(f"method {spec.method!r} needs a finding", "pass --finding NAME")
    return spec.finding


@METHODS.register("add")
def method_add(res: Resources, spec: SteerSpec) -> Steering:
    """Add the feature's decoder direction x coef x the typical residual norm."""
    f = _need_feature(res, spec)
    d = feature_direction(res.sae, f, res.site)
    return Steering({res.site: add_edit(d, res.stats, spec.coef, spec.where)}, direction=d)


@METHODS.register("clamp")
def method_clamp(res: Resources, spec: SteerSpec) -> Steering:
    """Set the feature to coef x its typical value through the SAE, error term kept."""
    f = _need_feature(res, spec)
    value = spec.clamp_value if spec.clamp_value is not None else spec.coef * res.typical_value(f)
    return Steering({res.site: clamp_edit(res.sae, f, float(value), spec.where)},
                    direction=feature_direction(res.sae, f, res.site))


@METHODS.register("ablate")
def method_ablate(res: Resources, spec: SteerSpec) -> Steering:
    """Set the feature to 0 through the SAE, error term kept."""
    f = _need_feature(res, spec)
    return Steering({res.site: clamp_edit(res.sae, f, 0.0, spec.where)},
                    direction=feature_direction(res.sae, f, res.site))


def _diffmean(matched: bool) -> MethodFn:
    def build(res: Resources, spec: SteerSpec) -> Steering:
        d = res.diffmean(_need_finding(spec), matched)
        return Steering({res.site: add_edit(d, res.stats, spec.coef, spec.where)}, direction=d)

    build.__doc__ = ("Add a difference of means (single-finding vs normal studies, or other findings "
                     "regressed out)" if matched else "Add a difference of means (with vs without the label)")
    return build


METHODS.add("diffmean", _diffmean(False))
METHODS.add("diffmean_matched", _diffmean(True))


def indication_naming(study: Study, finding: str) -> Study:
    """``study`` with ``finding`` named in its indication ("... Evaluate for pleural effusion.")."""
    base = (study.indication or "").strip()
    extra = f"Evaluate for {finding.lower()}."
    return dataclasses.replace(study, indication=f"{base} {extra}".strip())


@METHODS.register("prompt")
def method_prompt(res: Resources, spec: SteerSpec) -> Steering:
    """The unsteered model with the finding named in the indication."""
    finding = _need_finding(spec)
    return Steering(rewrite=lambda s: indication_naming(s, finding))


def direction_steering(res: Resources, direction: Direction, coef: float, where: str) -> Steering:
    """Add a prebuilt direction (random controls, reversed directions) like ``add``."""
    return Steering({res.site: add_edit(direction, res.stats, coef, where)}, direction=direction)


def build(res: Resources, spec: SteerSpec) -> Steering:
    """The :class:`Steering` of ``spec``."""
    return METHODS.get(spec.method)(res, spec)
