"""Steering directions and the residual scale they are measured against.

A :class:`Direction` holds one unit vector per position *group*: ``text`` (every non-image
position) and one per image slot (``frontal``, ``lateral``, ``prior``), so a difference of means
built on the current image is not added to the prior image's tokens. A group the direction does
not know falls back to ``image`` (any slot), then ``text``.

:class:`SiteStats` is the typical residual norm of each group at a site, measured leaving out
position 0 (its norm is orders of magnitude larger) and special tokens, so that a coefficient
means "this many typical residual norms".

Directions: :func:`feature_direction` (an SAE decoder row), :func:`random_direction` (the
control: a random unit vector, the same norm once scaled), :func:`diffmean_direction` (mean
residual of studies with a label minus without; ``matched``: single-finding studies vs normal
films, or, where there are too few, the label's coefficient with the other findings regressed
out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from radinterp.edits import EditContext
from radinterp.errors import InputError
from radinterp.models.tokens import ImageSlot, TokenKind

log = logging.getLogger(__name__)

TEXT, IMAGE = "text", "image"
SLOT_GROUPS = {int(ImageSlot.FRONTAL): "frontal", int(ImageSlot.LATERAL): "lateral",
               int(ImageSlot.PRIOR): "prior"}
"""Image slot -> group name."""
GROUPS = (TEXT, *SLOT_GROUPS.values())
"""Group of each index of :func:`group_index` (0 text, 1 + slot for image positions)."""


def group_of(kind: int, slot: int) -> str:
    """Group name of one position."""
    return SLOT_GROUPS.get(int(slot), IMAGE) if int(kind) == TokenKind.IMAGE else TEXT


def group_index(ctx: EditContext, n_rows: int, n_pos: int) -> torch.Tensor:
    """(B, T) long: index into :data:`GROUPS` of every position the edit sees (padding: text).
    Without layouts (a generated step with no batch) every position is text."""
    if ctx.layouts is None or ctx.columns is None:
        return torch.zeros(n_rows, n_pos, dtype=torch.long)
    pos = ctx.positions()  # (B, T)
    out = torch.zeros(pos.shape, dtype=torch.long)
    for b, layout in enumerate(ctx.layouts):
        p = pos[b]
        inside = (p >= 0) & (p < len(layout))
        pp = p[inside]
        kinds = torch.from_numpy(layout.kind.astype(np.int64))[pp]
        slots = torch.from_numpy(layout.image_slot.astype(np.int64))[pp]
        out[b, inside] = torch.where(kinds == int(TokenKind.IMAGE), slots + 1, torch.zeros_like(slots))
    return out.clamp(0, len(GROUPS) - 1)


@dataclass
class Direction:
    """Unit vectors per position group at one site."""

    site: str
    """Canonical site the vectors live at."""
    vectors: dict[str, torch.Tensor]
    """Group (``text``, ``image``, ``frontal``, ``lateral``, ``prior``) -> (d_model,) unit vector."""
    name: str = ""
    """What it is, for reports (``feature 123``, ``diffmean Pleural Effusion``, ``random 0``)."""
    info: dict = field(default_factory=dict)
    """How it was built (counts of studies, variant), JSON-able."""

    def __post_init__(self) -> None:
        if not self.vectors:
            raise ValueError("a Direction needs at least one vector; pass {'text': v}")
        for g, v in self.vectors.items():
            n = float(v.norm())
            if not np.isfinite(n) or n == 0:
                raise ValueError(f"direction {self.name!r}, group {g!r}: vector norm is {n}; "
                                 "pass a finite non-zero vector")
            self.vectors[g] = (v.detach().float() / n).cpu()

    def vector(self, group: str) -> torch.Tensor:
        """(d_model,) unit vector of ``group``, falling back to ``image`` then ``text``."""
        for g in (group, IMAGE if group in SLOT_GROUPS.values() else TEXT, TEXT, IMAGE):
            if g in self.vectors:
                return self.vectors[g]
        return next(iter(self.vectors.values()))

    def table(self) -> torch.Tensor:
        """(len(GROUPS), d_model): the vector of every group in :data:`GROUPS` order."""
        return torch.stack([self.vector(g) for g in GROUPS])

    def cosine(self, other: Direction, group: str = "frontal") -> float:
        return float(self.vector(group) @ other.vector(group))

    def reversed(self) -> Direction:
        return Direction(self.site, {g: -v for g, v in self.vectors.items()}, f"-{self.name}", dict(self.info))


@dataclass
class SiteStats:
    """Typical residual norm per group at a site (position 0 and special tokens left out)."""

    site: str
    """Canonical site."""
    norms: dict[str, float]
    """Group (``text``, ``image``) -> median residual norm."""
    n_rows: int = 0
    """Rows measured."""

    def norm(self, group: str) -> float:
        key = IMAGE if group in (IMAGE, *SLOT_GROUPS.values()) else TEXT
        return self.norms.get(key) or self.norms.get(TEXT) or next(iter(self.norms.values()))

    def table(self) -> torch.Tensor:
        """(len(GROUPS),): the norm of every group in :data:`GROUPS` order."""
        return torch.tensor([self.norm(g) for g in GROUPS])

    @classmethod
    def from_rows(cls, site: str, acts: torch.Tensor, kind: np.ndarray, position: np.ndarray,
                  token_id: np.ndarray, special_ids: set[int]) -> SiteStats:
        """From rows (n, d_model) and their metadata columns."""
        special = np.isin(token_id, sorted(special_ids)) & (kind != int(TokenKind.IMAGE))  # image ids stay
        keep = (position > 0) & ~special
        norms = acts.float().norm(dim=1).numpy()  # (n,)
        out = {}
        for name, sel in ((IMAGE, kind == int(TokenKind.IMAGE)), (TEXT, kind != int(TokenKind.IMAGE))):
            m = keep & sel
            if m.any():
                out[name] = float(np.median(norms[m]))
        if not out:
            raise ValueError(f"no rows left at {site} after leaving out position 0 and special "
                             "tokens; capture with --token-filter all")
        return cls(site, out, int(keep.sum()))

    @classmethod
    def from_store(cls, store, site: str, special_ids: set[int], max_studies: int = 64) -> SiteStats:
        """Measured on the first ``max_studies`` studies of an activation store."""
        acts, meta = [], {"kind": [], "position": [], "token_id": []}
        for _, m, x in store.iter_studies(site, store.studies()[:max_studies]):
            acts.append(x)
            for c in meta:
                meta[c].append(m[c])
        if not acts:
            raise ValueError(f"store {store.root} holds no rows at {site}; capture it first")
        return cls.from_rows(site, torch.cat(acts), *(np.concatenate(meta[c]) for c in meta),
                             special_ids=special_ids)

    @classmethod
    def measure(cls, adapter, studies, site: str) -> SiteStats:
        """Measured by one forward over ``studies`` (their generation prompts)."""
        from radinterp.hooks import capture

        items = [adapter.build_inputs(s) for s in studies]
        batch = adapter.collate(items)
        with torch.no_grad(), capture(adapter, [site]) as acts:
            adapter.model(**adapter.to_device(batch))
        h = acts[site].float().cpu()  # (B, T, d)
        rows, kinds, pos, ids = [], [], [], []
        for b, it in enumerate(items):
            n = len(it.input_ids)
            rows.append(h[b, :n])
            kinds.append(it.layout.kind.astype(np.int64))
            pos.append(np.arange(n))
            ids.append(it.input_ids.numpy())
        return cls.from_rows(site, torch.cat(rows), np.concatenate(kinds), np.concatenate(pos),
                             np.concatenate(ids), special_ids=set(adapter.tokenizer.all_special_ids))


def feature_direction(sae, feature: int, site: str) -> Direction:
    """The SAE decoder row of ``feature`` (the same vector in every group)."""
    check_feature(sae, feature)
    return Direction(site, {TEXT: sae.W_dec[feature].detach()}, f"feature {feature}",
                     {"feature": int(feature)})


def check_feature(sae, feature: int) -> None:
    if not 0 <= int(feature) < sae.d_sae:
        raise InputError(f"feature index {feature} is out of range for an SAE with {sae.d_sae} latents",
                         f"pass --feature in 0..{sae.d_sae - 1}")


def random_direction(d_model: int, site: str, seed: int) -> Direction:
    """A random unit vector (a control of equal norm once scaled like any direction)."""
    g = torch.Generator().manual_seed(int(seed))
    return Direction(site, {TEXT: torch.randn(d_model, generator=g)}, f"random {seed}", {"seed": int(seed)})


# ---------------------------------------------------------------- difference of means
def pooled_groups(store, site: str, study_ids: list[str]) -> tuple[list[str], dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """Per study and group, the mean residual (position 0 left out): (ids, group -> (n, d), group
    -> (n,) bool has-rows)."""
    ids, means, has = [], {g: [] for g in (TEXT, IMAGE, *SLOT_GROUPS.values())}, {}
    d = store.d_model
    for sid, m, x in store.iter_studies(site, study_ids):
        ids.append(sid)
        keep = m["position"] > 0
        groups = np.array([group_of(k, s) for k, s in zip(m["kind"], m["image_slot"])])
        for g in means:
            sel = keep & ((groups != TEXT) if g == IMAGE else (groups == g))
            means[g].append(x[torch.from_numpy(sel)].mean(0) if sel.any() else torch.full((d,), float("nan")))
    stacked = {g: torch.stack(v) if v else torch.empty(0, d) for g, v in means.items()}
    has = {g: ~torch.isnan(v[:, 0]).numpy() for g, v in stacked.items()}
    return ids, stacked, has


@dataclass
class LabelTable:
    """Which findings each study holds (0/1), from the studies' reference labels."""

    study_ids: list[str]
    labels: list[str]
    Y: np.ndarray
    """(n_studies, n_labels) bool."""

    @classmethod
    def from_studies(cls, studies, labels: list[str]) -> LabelTable:
        from radinterp.labels import is_positive

        Y = np.array([[is_positive(s.labels, lab) for lab in labels] for s in studies], dtype=bool)
        return cls([s.study_id for s in studies], list(labels), Y.reshape(len(studies), len(labels)))

    def column(self, label: str) -> np.ndarray:
        return self.Y[:, self.labels.index(label)]


def diffmean_direction(store, site: str, table: LabelTable, label: str, *, matched: bool = False,
                       min_studies: int = 3) -> Direction:
    """Mean residual of studies with ``label`` minus studies without, per group.

    ``matched``: studies whose only finding is ``label`` vs studies with no finding; when either
    side has fewer than ``min_studies``, the label's least-squares coefficient with every other
    finding regressed out instead (per group, on per-study mean residuals)."""
    if label not in table.labels:
        raise InputError(f"unknown finding {label!r}", f"use one of: {', '.join(table.labels)}")
    ids, means, has = pooled_groups(store, site, table.study_ids)
    row = {s: i for i, s in enumerate(table.study_ids)}
    Y = table.Y[[row[s] for s in ids]]  # (n, L)
    y = Y[:, table.labels.index(label)]
    others = np.delete(Y, table.labels.index(label), axis=1)
    if matched:
        pos, neg = y & ~others.any(1), ~Y.any(1)
        variant = "single-finding vs normal"
        if min(pos.sum(), neg.sum()) < min_studies:
            variant = "regressed"
    else:
        pos, neg, variant = y, ~y, "plain"
    if variant != "regressed" and min(pos.sum(), neg.sum()) < 1:
        raise ValueError(f"no studies {'with' if pos.sum() == 0 else 'without'} {label!r} in the "
                         f"store; pass a store with both (capture more studies)")
    vectors = {}
    for g, M in means.items():
        ok = has[g]
        if not ok.any():
            continue
        if variant == "regressed":
            X = np.c_[np.ones(ok.sum()), Y[ok].astype(np.float64)]  # (n, 1 + L)
            coef, *_ = np.linalg.lstsq(X, M[torch.from_numpy(ok)].double().numpy(), rcond=None)
            v = torch.from_numpy(coef[1 + table.labels.index(label)]).float()
        else:
            p, n = ok & pos, ok & neg
            if not p.any() or not n.any():
                continue
            v = M[torch.from_numpy(p)].mean(0) - M[torch.from_numpy(n)].mean(0)
        if float(v.norm()) > 0:
            vectors[g] = v
    info = {"label": label, "variant": variant, "n_pos": int(pos.sum()), "n_neg": int(neg.sum())}
    name = f"diffmean{'_matched' if matched else ''} {label}"
    log.info("%s: %s (%d vs %d studies)", name, variant, info["n_pos"], info["n_neg"])
    return Direction(site, vectors, name, info)
