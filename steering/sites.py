"""Steering at several sites at once (``--layers 10,15``): the same method built at every site
from that site's own :class:`~steering.methods.Resources` (its residual scale, its SAE, its
difference of means), the edits merged into one :class:`~steering.methods.Steering`.

An SAE feature only means something in its own SAE, so with several sites an SAE method takes
one feature per site (a tuple, in the order of the sites; ``--finding`` picks each one by
AUROC at its site). Random controls draw one direction per site, each of equal norm there.
"""

from __future__ import annotations

import dataclasses

from radinterp.errors import InputError
from steering.directions import random_direction
from steering.methods import Resources, Steering, SteerSpec, build, direction_steering

Feature = int | tuple[int, ...] | None
"""One latent (one site) or one latent per site (several sites)."""


def layer_sites(layers: list[int]) -> list[str]:
    """Canonical residual sites of ``layers`` (``lm.blocks.N.resid_post``), duplicates refused."""
    if len(set(layers)) != len(layers):
        raise InputError(f"--layers {layers} names a layer twice", "pass each layer once, e.g. --layers 10,15")
    return [f"lm.blocks.{n}.resid_post" for n in layers]


def merge(parts: list[Steering]) -> Steering:
    """One steering doing every part's edits (parts at distinct sites); the first part's
    direction and rewrite name it, every part is kept for the reversed control."""
    edits: dict = {}
    for p in parts:
        clash = set(edits) & set(p.edits)
        if clash:
            raise ValueError(f"two parts edit {sorted(clash)}; merge steerings of distinct sites")
        edits.update(p.edits)
    return Steering(edits, rewrite=parts[0].rewrite, direction=parts[0].direction, parts=list(parts))


def _per_site(feature: Feature, n_sites: int) -> list[int | None]:
    if isinstance(feature, tuple):
        if len(feature) != n_sites:
            raise InputError(f"{len(feature)} features for {n_sites} sites", "pass one feature per layer")
        return list(feature)
    if feature is not None and n_sites > 1:
        raise InputError("one SAE feature index for several layers (each layer has its own SAE)",
                         "pass --finding NAME (a feature is picked per layer) or one layer")
    return [feature] * n_sites


def build_at(resources: list[Resources], spec: SteerSpec) -> Steering:
    """``spec`` built at every site of ``resources`` (``spec.feature``: one per site) and merged."""
    if len(resources) == 1:
        return build(resources[0], spec)
    feats = _per_site(spec.feature, len(resources))
    return merge([build(r, dataclasses.replace(spec, feature=f)) for r, f in zip(resources, feats)])


def reversed_at(resources: list[Resources], steering: Steering, coef: float, where: str) -> Steering:
    """Every site's direction of ``steering`` negated, added at ``coef``."""
    parts = steering.parts or [steering]
    return merge([direction_steering(r, p.direction.reversed(), coef, where) for r, p in zip(resources, parts)])


def random_at(resources: list[Resources], coef: float, where: str, seed: int) -> Steering:
    """A random unit direction per site (seeded by ``seed`` and the site's position), added like ``add``."""
    return merge([direction_steering(r, random_direction(r.adapter.site_dim(r.site), r.site, seed=seed + 7919 * i),
                                     coef, where) for i, r in enumerate(resources)])
