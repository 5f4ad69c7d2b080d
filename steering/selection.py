"""Picking the SAE feature for a finding (``--finding NAME``), three ways:

- ``auroc``: the latent whose per-study maximum (over image positions by default) best
  separates studies with the label from those without, chosen on one half of the store's
  studies and scored on the other (held-out AUROC);
- ``effect``: among the ``top`` latents by selection AUROC, the one whose decoder direction,
  added at ``coef``, most raises the log-probability of the finding's words right after the
  prompt (mean over studies without the finding, versus unsteered);
- ``steered``: among the same latents, the one whose direction, added while generating on
  selection-split studies without the finding, makes the most reports state it (run by
  :func:`steering.evaluate.select_by_generation`, since it generates).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from radinterp.metrics import auroc_columns
from radinterp.store.kinds import resolve_kinds
from steering.directions import LabelTable, SiteStats, feature_direction
from steering.methods import add_edit
from steering.scoring import continuation_logprobs

log = logging.getLogger(__name__)

SELECTIONS = ("auroc", "effect", "steered")
"""Ways ``--finding`` picks a feature."""


@dataclass
class Candidate:
    """One latent considered for a finding."""

    feature: int
    auroc_select: float
    """AUROC on the selection half of the store's studies."""
    auroc_held: float
    """AUROC on the other half."""
    effect: float | None = None
    """Mean rise of the finding words' log-probability when added (nats), where measured."""
    steered_rate: float | None = None
    """Share of steered selection-split reports that state the finding, where generated."""


def study_max_codes(store, sae, site: str, study_ids: list[str], kinds=("image",)) -> tuple[list[str], torch.Tensor]:
    """(ids, (n_studies, d_sae)) maximum code of each latent over each study's ``kinds`` rows."""
    ids, rows = [], []
    with torch.no_grad():
        for sid, _, x in store.iter_studies(site, study_ids, token_kinds=list(resolve_kinds(list(kinds)))):
            ids.append(sid)
            rows.append(sae.encode(x).max(0).values)  # (d_sae,)
    return ids, torch.stack(rows) if rows else torch.empty(0, sae.d_sae)


def rank_by_auroc(store, sae, site: str, table: LabelTable, label: str, *, top: int = 8, seed: int = 0,
                  kinds=("image",), codes: tuple[list[str], torch.Tensor] | None = None) -> list[Candidate]:
    """The ``top`` latents by selection-half AUROC for ``label``, with their held-out AUROC."""
    ids, Z = codes or study_max_codes(store, sae, site, table.study_ids, kinds)
    row = {s: i for i, s in enumerate(table.study_ids)}
    y = table.column(label)[[row[s] for s in ids]]
    perm = np.random.default_rng(seed).permutation(len(ids))
    sel, held = np.sort(perm[: len(ids) // 2]), np.sort(perm[len(ids) // 2:])
    if min(y[sel].sum(), (~y[sel]).sum(), y[held].sum(), (~y[held]).sum()) < 1:
        raise ValueError(f"the store's studies do not hold {label!r} on both sides of its split "
                         f"({int(y.sum())} of {len(y)} positive); capture more studies")
    a_sel = np.nan_to_num(auroc_columns(Z[sel].numpy(), y[sel]), nan=0.0)
    a_held = auroc_columns(Z[held].numpy(), y[held])
    best = np.argsort(-a_sel, kind="stable")[:top]
    return [Candidate(int(j), float(a_sel[j]), float(a_held[j])) for j in best]


def finding_words(label: str) -> str:
    """The words whose probability the effect selection measures."""
    return f" There is {label.lower()}."


@torch.no_grad()
def measure_effects(adapter, sae, site: str, stats: SiteStats, studies, label: str,
                    candidates: list[Candidate], *, coef: float = 1.0, where: str = "image",
                    batch_size: int = 16) -> list[Candidate]:
    """Fill each candidate's ``effect``: mean log-probability rise of :func:`finding_words`."""
    prompts = [adapter.build_inputs(s) for s in studies]
    words = torch.tensor(adapter.tokenizer(finding_words(label), add_special_tokens=False)["input_ids"])
    conts = [words] * len(prompts)
    base = torch.stack([lp.sum() for lp in continuation_logprobs(adapter, prompts, conts, batch_size=batch_size)])
    for c in candidates:
        d = feature_direction(sae, c.feature, site)
        ed = {site: add_edit(d, stats, coef, where)}
        lp = torch.stack([x.sum() for x in continuation_logprobs(adapter, prompts, conts, edits=ed,
                                                                  batch_size=batch_size)])
        c.effect = float((lp - base).mean())
    return candidates


def pick(candidates: list[Candidate], how: str) -> Candidate:
    """The candidate ``how`` (``auroc`` or ``effect``) picks."""
    if how == "auroc":
        return candidates[0]
    if how == "steered":
        measured = [c for c in candidates if c.steered_rate is not None]
        if not measured:
            raise ValueError("no candidate has a steered rate; run select_by_generation first")
        return max(measured, key=lambda c: c.steered_rate)
    measured = [c for c in candidates if c.effect is not None]
    if not measured:
        raise ValueError("no candidate has a measured effect; run measure_effects first")
    return max(measured, key=lambda c: c.effect)
