"""``enrichment``: the offline explainer. Which labels (with side and severity), report
phrases and image regions are over-represented in the explanation set's activating studies
versus its non-activating ones.

For each item (a label, a qualified label such as ``left Pleural Effusion``, a word n-gram of
the report) it counts the activating studies ``a`` of ``n_active`` and the non-activating
studies ``b`` of ``n_inactive`` that carry it, and ranks items with ``a > b`` rates by the
one-sided hypergeometric (Fisher exact) p-value, ties broken by the log-odds ratio with a
``prior`` pseudo-count. Regions: the ``region_phrase`` of each activating image example's
patch heatmap; the most common one is named when it holds at least ``region_share`` of them.
The explanation is the top labels, then the top phrases, then the region, in words::

    Pleural Effusion (12/14 active vs 1/20 inactive); 'left pleural effusion' (9/14 vs 0/20);
    right lower zone (8/10 image examples)

Deterministic: the same sample gives the same text.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import hypergeom

from autointerp.context import patch_heat, region_phrase
from autointerp.explainers.base import EXPLAINERS, ExplainContext, Explainer, Explanation
from autointerp.sampling import LatentSample


@dataclass
class Enriched:
    """One over-represented item."""

    item: str
    kind: str
    """``label`` or ``phrase``."""
    active: int
    n_active: int
    inactive: int
    n_inactive: int
    p_value: float
    log_odds: float

    def words(self) -> str:
        shown = self.item if self.kind == "label" else f"'{self.item}'"
        return (f"{shown} ({self.active}/{self.n_active} active vs "
                f"{self.inactive}/{self.n_inactive} inactive)")


def enrichment_table(active: list[set[str]], inactive: list[set[str]], kind: str, *,
                     prior: float = 0.5, alpha: float = 0.05, min_active: int = 2
                     ) -> list[Enriched]:
    """Items over-represented in ``active`` (one item set per study) against ``inactive``,
    p-value < ``alpha`` and at least ``min_active`` active studies, best first."""
    na, ni = len(active), len(inactive)
    if not na:
        return []
    ca, ci = Counter(i for s in active for i in s), Counter(i for s in inactive for i in s)
    items = sorted(i for i, c in ca.items() if c >= min_active and c / na > ci[i] / max(ni, 1))
    if not items:
        return []
    a = np.array([ca[i] for i in items])  # (n_items,)
    b = np.array([ci[i] for i in items])
    p = hypergeom.sf(a - 1, na + ni, a + b, na)  # P(X >= a) drawing na of na + ni
    lo = (np.log((a + prior) / (na - a + prior)) - np.log((b + prior) / (ni - b + prior)))
    order = np.lexsort((items, -lo, p))  # p ascending, then log-odds descending, then name
    return [Enriched(items[j], kind, int(a[j]), na, int(b[j]), ni, float(p[j]), float(lo[j]))
            for j in order if p[j] < alpha]


@EXPLAINERS.register("enrichment")
class EnrichmentExplainer(Explainer):
    """See the module docstring."""

    name = "enrichment"

    def __init__(self, *, n_labels: int = 2, n_phrases: int = 3, region_share: float = 0.5,
                 alpha: float = 0.05, prior: float = 0.5) -> None:
        self.n_labels, self.n_phrases = n_labels, n_phrases
        self.region_share, self.alpha, self.prior = region_share, alpha, prior

    def explain(self, sample: LatentSample, ctx: ExplainContext) -> Explanation:
        act = [ex for ex in sample.explain if ex.activation > 0]
        ina = [ex for ex in sample.explain if ex.activation <= 0]
        missing = sorted({ex.study_id for ex in sample.explain} - set(ctx.evidence))
        if missing:
            return Explanation(sample.latent, self.name, "", ok=False,
                               error=f"no study record for {missing[:3]}; pass --data with the "
                                     "studies the store was captured from")
        ev_a = [ctx.evidence[ex.study_id] for ex in act]
        ev_i = [ctx.evidence[ex.study_id] for ex in ina]
        kw = {"prior": self.prior, "alpha": self.alpha}
        labels = enrichment_table([e.label_items for e in ev_a], [e.label_items for e in ev_i],
                                  "label", **kw)
        phrases = enrichment_table([e.phrases for e in ev_a], [e.phrases for e in ev_i],
                                   "phrase", **kw)
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
        text = "; ".join(parts) or (f"nothing over-represented ({len(act)} active vs "
                                    f"{len(ina)} inactive studies)")
        evidence = {"n_active": len(act), "n_inactive": len(ina),
                    "labels": [vars(e) for e in labels[:10]],
                    "phrases": [vars(e) for e in phrases[:10]],
                    "regions": dict(regions), "region": region}
        return Explanation(sample.latent, self.name, text, evidence=evidence)


def _drop_covered(phrases: list[Enriched], labels: list[Enriched]) -> list[Enriched]:
    """Phrases other than a label's own words (``pleural effusion`` beside the label)."""
    names = {e.item.lower() for e in labels}
    return [p for p in phrases if p.item not in names]


__all__ = ["Enriched", "EnrichmentExplainer", "enrichment_table"]
