"""``enrichment``: the offline explainer. Which labels (with side and severity), report
phrases and image regions are over-represented in the explanation set's activating studies
versus its non-activating ones.

The contrast: activating versus non-activating studies when the non-activating ones are at
least ``min_inactive_share`` of the set; otherwise (a dense latent, firing nearly everywhere,
whose meaning is in its magnitude) the studies above the set's median activation versus the
rest, named ``high`` / ``low``. For each item (a label, a qualified label such as
``left Pleural Effusion``, a word n-gram of the report) it counts the studies ``a`` of the
``n_active`` on the firing side and ``b`` of the ``n_inactive`` on the other that carry it
(the counts shown), and ranks the items with a higher rate on the firing side by the
one-sided rank-sum (Mann-Whitney) p-value of the activations of the studies carrying it
against the rest, so that magnitude counts too (a dense latent whose strongest studies all
carry a rare finding ranks it first); ties go to the log-odds ratio of the counts with a
``prior`` pseudo-count. ``Support Devices`` gives way to an enriched device subtype, and a
phrase inside a longer one with the same counts is dropped (``pleural effusion`` wins over
``pleural``). Regions: the ``region_phrase`` of each firing-side image example's patch
heatmap; the most common one is named when it holds at least ``region_share`` of them.
The explanation is the top labels, then the top phrases, then the region, in words::

    Pleural Effusion (12/14 active vs 1/20 inactive); 'left pleural effusion' (9/14 vs 0/20);
    right lower zone (8/10 image examples)

Deterministic: the same sample gives the same text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from autointerp.context import patch_heat, region_phrase
from autointerp.explainers.base import EXPLAINERS, ExplainContext, Explainer, Explanation
from autointerp.sampling import LatentSample
from radinterp.labels import DEVICE_SUBTYPES


@dataclass
class Enriched:
    """One over-represented item."""

    item: str
    kind: str
    """``label`` or ``phrase``."""
    sides: tuple[str, str]
    """Names of the two groups: (``active``, ``inactive``) or (``high``, ``low``)."""
    active: int
    n_active: int
    inactive: int
    n_inactive: int
    p_value: float
    log_odds: float

    def words(self) -> str:
        shown = self.item if self.kind == "label" else f"'{self.item}'"
        hi, lo = self.sides
        return (f"{shown} ({self.active}/{self.n_active} {hi} vs "
                f"{self.inactive}/{self.n_inactive} {lo})")


def enrichment_table(items_of: list[set[str]], values: np.ndarray, high: np.ndarray,
                     kind: str, *, prior: float = 0.5, alpha: float = 0.05, min_active: int = 2,
                     sides: tuple[str, str] = ("active", "inactive")) -> list[Enriched]:
    """Items over-represented where the latent fires: ``items_of`` one item set per study,
    ``values`` (n,) the latent's activation there, ``high`` (n,) bool the firing side of the
    contrast. Kept: at least ``min_active`` firing-side studies, a higher rate there than on
    the other side, and a one-sided rank-sum (Mann-Whitney, normal approximation) p-value of
    the activations of studies with versus without the item below ``alpha``; best first."""
    high = np.asarray(high, dtype=bool)
    na, ni = int(high.sum()), int((~high).sum())
    n = len(items_of)
    if not na or not ni:
        return []
    ca = Counter(i for s, h in zip(items_of, high) if h for i in s)
    ci = Counter(i for s, h in zip(items_of, high) if not h for i in s)
    items = sorted(i for i, c in ca.items() if c >= min_active and c / na > ci[i] / ni
                   and c + ci[i] < n)
    if not items:
        return []
    a = np.array([ca[i] for i in items])  # (n_items,)
    b = np.array([ci[i] for i in items])
    col = {i: j for j, i in enumerate(items)}
    has = np.zeros((n, len(items)), dtype=bool)  # (n, n_items)
    for r, s in enumerate(items_of):
        has[r, [col[i] for i in s if i in col]] = True
    ranks = rankdata(np.asarray(values, dtype=np.float64))  # (n,) average ranks
    n1 = has.sum(0)  # (n_items,)
    n0 = n - n1
    u = ranks @ has - n1 * (n1 + 1) / 2  # (n_items,) Mann-Whitney U of the item's studies
    z = (u - n1 * n0 / 2) / np.sqrt(n1 * n0 * (n + 1) / 12)
    p = norm.sf(z)
    lo = (np.log((a + prior) / (na - a + prior)) - np.log((b + prior) / (ni - b + prior)))
    order = np.lexsort((items, -lo, p))  # p ascending, then log-odds descending, then name
    out = [Enriched(items[j], kind, sides, int(a[j]), na, int(b[j]), ni, float(p[j]),
                    float(lo[j])) for j in order if p[j] < alpha]
    return _drop_subphrases(out) if kind == "phrase" else out


def _drop_subphrases(rows: list[Enriched]) -> list[Enriched]:
    """Drop a phrase contained in a longer one with the same counts (the longer says more)."""
    by_counts: dict[tuple[int, int], list[str]] = {}
    for r in rows:
        by_counts.setdefault((r.active, r.inactive), []).append(r.item)
    return [r for r in rows if not any(
        o != r.item and f" {r.item} " in f" {o} " for o in by_counts[(r.active, r.inactive)])]


@EXPLAINERS.register("enrichment")
class EnrichmentExplainer(Explainer):
    """See the module docstring."""

    name = "enrichment"

    def __init__(self, *, n_labels: int = 3, n_phrases: int = 3, region_share: float = 0.5,
                 alpha: float = 0.05, prior: float = 0.5, min_inactive_share: float = 0.25
                 ) -> None:
        self.n_labels, self.n_phrases = n_labels, n_phrases
        self.region_share, self.alpha, self.prior = region_share, alpha, prior
        self.min_inactive_share = min_inactive_share

    def contrast(self, sample: LatentSample) -> tuple[list, list, tuple[str, str]]:
        """(firing side, other side, their names): see the module docstring."""
        exs = sample.explain
        act = [ex for ex in exs if ex.activation > 0]
        if len(exs) - len(act) >= self.min_inactive_share * len(exs):
            return act, [ex for ex in exs if ex.activation <= 0], ("active", "inactive")
        med = float(np.median([ex.activation for ex in exs]))
        return ([ex for ex in exs if ex.activation > med],
                [ex for ex in exs if ex.activation <= med], ("high", "low"))

    def explain(self, sample: LatentSample, ctx: ExplainContext) -> Explanation:
        act, ina, sides = self.contrast(sample)
        missing = sorted({ex.study_id for ex in sample.explain} - set(ctx.evidence))
        if missing:
            return Explanation(sample.latent, self.name, "", ok=False,
                               error=f"no study record for {missing[:3]}; pass --data with the "
                                     "studies the store was captured from")
        exs = act + ina
        evs = [ctx.evidence[ex.study_id] for ex in exs]
        kw = {"prior": self.prior, "alpha": self.alpha, "sides": sides}
        values = np.array([ex.activation for ex in exs])  # (n,)
        high = np.arange(len(exs)) < len(act)  # (n,)
        labels = enrichment_table([e.label_items for e in evs], values, high, "label", **kw)
        labels = _specific(labels)
        phrases = enrichment_table([e.phrases for e in evs], values, high, "phrase", **kw)
        phrases = _drop_covered(phrases, labels)
        regions = Counter(r for ex in act if (r := region_phrase(patch_heat(ex, ctx.n_side))))
        n_img = sum(regions.values())
        parts = [e.words() for e in labels[: self.n_labels]]
        parts += [e.words() for e in phrases[: self.n_phrases]]
        region = None
        if n_img:
            region, count = min(regions.items(), key=lambda kv: (-kv[1], kv[0]))
            if count / n_img >= self.region_share:
                parts.append(f"{region} ({count}/{n_img} image examples)")
            else:
                region = None
        text = "; ".join(parts) or (f"nothing over-represented ({len(act)} {sides[0]} vs "
                                    f"{len(ina)} {sides[1]} studies)")
        evidence = {"contrast": "/".join(sides), "n_active": len(act), "n_inactive": len(ina),
                    "labels": [vars(e) for e in labels[:10]],
                    "phrases": [vars(e) for e in phrases[:10]],
                    "regions": dict(regions), "region": region}
        return Explanation(sample.latent, self.name, text, evidence=evidence)


def _specific(labels: list[Enriched]) -> list[Enriched]:
    """Drop ``Support Devices`` when a device subtype (which implies it) is enriched too, and
    ``No Finding`` (set beside devices by CheXpert's convention) when anything else is."""
    names = {e.item for e in labels}
    has_device = bool(names & (set(DEVICE_SUBTYPES) - {"Support Devices"}))
    return [e for e in labels if not (e.item == "Support Devices" and has_device)
            and not (e.item == "No Finding" and len(names) > 1)]


def _drop_covered(phrases: list[Enriched], labels: list[Enriched]) -> list[Enriched]:
    """Phrases other than a label's own words (``pleural effusion`` beside the label)."""
    names = {e.item.lower() for e in labels}
    return [p for p in phrases if p.item not in names]


__all__ = ["Enriched", "EnrichmentExplainer", "enrichment_table"]
