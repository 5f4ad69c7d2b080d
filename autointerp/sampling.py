"""Draw each latent's examples from its records: activating ones across activation quantiles,
non-activating ones (random and hard negatives), split into an explanation and a test set.

The split is by study: a study goes to the test set when a hash of (seed, study id) falls below
``test_fraction``, for every latent alike, so the two sets never share a study and the split is
the same on every run and for every subset of latents. Activating examples come from the
latent's kept examples (top-k and reservoir, ``LatentRecords``); quantile bins are the exact
quantiles of the latent's per-study maxima over all activating studies (``study_max``).
Hard negatives are studies where the latent does not fire whose per-study max-activation
vectors (the latent's own column left out) have the highest cosine similarity to the mean
vector of its activating studies: they look like the activating studies to the rest of the SAE.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from autointerp.records import Example, LatentRecords
from radinterp.config import BaseConfig


@dataclass
class SampleConfig(BaseConfig):
    """How many examples of each sort to draw per latent."""

    n_quantiles: int = 10
    """Activation-quantile bins of the activating studies."""
    per_quantile: int = 2
    """Activating examples drawn per bin and per split (fewer where a bin has fewer kept)."""
    n_random: int = 10
    """Random non-activating studies per split."""
    n_hard: int = 10
    """Hard negatives per split (see the module docstring)."""
    test_fraction: float = 0.5
    """Share of studies in the held-out test set."""
    seed: int = 0
    """Seed of the split and of the draws."""

    def __post_init__(self) -> None:
        if self.n_quantiles < 1:
            raise ValueError(f"n_quantiles must be >= 1, got {self.n_quantiles}")
        for name in ("per_quantile", "n_random", "n_hard"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}; "
                             "pass e.g. 0.5")


@dataclass
class LatentSample:
    """One latent's drawn examples; activating ones carry ``source="quantile"`` and their bin,
    negatives ``source="random"`` or ``"hard"``."""

    latent: int
    explain: list[Example]
    """Examples shown to an explainer."""
    test: list[Example]
    """Held-out examples for scorers (no study in common with ``explain``)."""
    quantile_edges: np.ndarray  # (n_quantiles + 1,) float64


def in_test(study_id: str, seed: int, test_fraction: float) -> bool:
    """Whether ``study_id`` is in the held-out test set (deterministic, by hash)."""
    h = hashlib.sha256(f"{seed}\0{study_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64 < test_fraction


def quantile_edges(records: LatentRecords, latent: int, n: int) -> np.ndarray:
    """(n + 1,) quantiles of the latent's per-study maxima over its activating studies."""
    vals = records.study_max[:, latent].float().numpy()
    vals = vals[vals > 0]
    if not len(vals):
        return np.zeros(n + 1)
    return np.quantile(vals.astype(np.float64), np.linspace(0.0, 1.0, n + 1))


def hard_negative_scores(records: LatentRecords, latent: int) -> np.ndarray:
    """(n_studies,) cosine similarity of each study's max-activation vector (``latent``'s own
    column zeroed) to the mean vector of the latent's activating studies."""
    x = records.study_max.float().clone()  # (n_studies, d_sae)
    active = x[:, latent] > 0
    x[:, latent] = 0
    if not bool(active.any()):
        return np.zeros(x.shape[0])
    centre = x[active].mean(0)  # (d_sae,)
    return torch.nn.functional.cosine_similarity(x, centre[None, :], dim=1).numpy()


def sample_latent(records: LatentRecords, latent: int, cfg: SampleConfig | None = None
                  ) -> LatentSample:
    """Draw ``latent``'s explanation and test examples; see the module docstring."""
    cfg = cfg or SampleConfig()
    if not 0 <= latent < records.d_sae:
        raise IndexError(f"latent {latent} outside [0, {records.d_sae}); pass a latent index "
                         "of this SAE")
    rng = np.random.default_rng([cfg.seed, latent])
    test_side = np.array([in_test(s, cfg.seed, cfg.test_fraction) for s in records.study_ids],
                         dtype=bool)  # (n_studies,)
    edges = quantile_edges(records, latent, cfg.n_quantiles)
    sims = hard_negative_scores(records, latent)  # (n_studies,)
    pool: dict[str, Example] = {}
    for ex in [*records.top[latent], *records.reservoir[latent]]:
        pool.setdefault(ex.study_id, ex)
    index = {s: i for i, s in enumerate(records.study_ids)}
    sides: dict[bool, list[Example]] = {False: [], True: []}
    for side in (False, True):
        mine = [ex for ex in pool.values() if test_side[index[ex.study_id]] == side]
        bins = np.clip(np.searchsorted(edges[1:-1], [ex.activation for ex in mine],
                                       side="right"), 0, cfg.n_quantiles - 1)
        for q in range(cfg.n_quantiles):
            members = [ex for ex, b in zip(mine, bins, strict=True) if b == q]
            take = rng.permutation(len(members))[: cfg.per_quantile]
            sides[side] += [dataclasses.replace(members[i], source="quantile", quantile=q)
                            for i in sorted(take)]
        sides[side] += _negatives(records, latent, test_side == side, sims, cfg, rng)
    return LatentSample(latent, sides[False], sides[True], edges)


def _negatives(records: LatentRecords, latent: int, on_side: np.ndarray, sims: np.ndarray,
               cfg: SampleConfig, rng: np.random.Generator) -> list[Example]:
    silent = (records.study_max[:, latent] == 0).numpy() & on_side  # (n_studies,)
    idx = np.flatnonzero(silent)
    hard = idx[np.argsort(-sims[idx], kind="stable")[: cfg.n_hard]]
    rest = np.setdiff1d(idx, hard)
    rand = rng.choice(rest, size=min(cfg.n_random, len(rest)), replace=False)
    return ([Example.negative(records.study_ids[i], latent, "hard") for i in hard]
            + [Example.negative(records.study_ids[i], latent, "random") for i in sorted(rand)])


def sample_latents(records: LatentRecords, latents: list[int] | None = None,
                   cfg: SampleConfig | None = None) -> list[LatentSample]:
    """``sample_latent`` for each of ``latents`` (default: every latent that fires)."""
    if latents is None:
        latents = [f for f in range(records.d_sae) if records.fire_by_kind[f].sum()]
    return [sample_latent(records, f, cfg) for f in latents]


__all__ = ["LatentSample", "SampleConfig", "hard_negative_scores", "in_test", "quantile_edges",
           "sample_latent", "sample_latents"]
