"""CSR's modules on frozen patch features: concept model, prototype atlas, task head.

Shapes: ``N`` studies, ``h x w`` patch grid, ``d`` input feature size, ``K`` concepts, ``M``
prototypes per concept, ``C`` task classes. Maps are cosine similarities in [-1, 1].

- :class:`ConceptModel`: the paper's feature extractor (here a small conv head on the frozen
  vision-tower features) and concept head (a 1x1 conv whose output per concept is its class
  activation map, CAM); the concept logit pools the CAM.
- :func:`local_concept_vectors`: per study and concept, the CAM-weighted mean of the features
  (spatial softmax of the CAM as weights).
- :class:`Atlas`: the projector and the M prototypes per concept; similarity maps of every
  prototype over the patches; a prototype can be pruned (``active``).
- :class:`CSRModel`: the three together plus the linear task head on the prototypes' maximum
  similarities over patches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from eval.methods.csr.config import CSRConfig


class ConceptModel(nn.Module):
    """Feature-extractor head + concept head (CAM per concept, pooled into a logit)."""

    def __init__(self, d_in: int, n_concepts: int, cfg: CSRConfig) -> None:
        super().__init__()
        self.pool, self.lse_r = cfg.pool, cfg.lse_r
        self.features = nn.Sequential(
            nn.Conv2d(d_in, cfg.d_feature, 1), nn.GELU(),
            nn.Conv2d(cfg.d_feature, cfg.d_feature, cfg.context_kernel, padding=cfg.context_kernel // 2),
            nn.GELU(),
        )
        self.concept_head = nn.Conv2d(cfg.d_feature, n_concepts, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Patch features (N, h, w, d) -> features (N, d_f, h, w) and CAMs (N, K, h, w)."""
        f = self.features(x.permute(0, 3, 1, 2))  # (N, d_f, h, w)
        return f, self.concept_head(f)  # (N, K, h, w)

    def logits(self, cam: torch.Tensor) -> torch.Tensor:
        """Concept logits (N, K) pooled from CAMs (N, K, h, w)."""
        flat = cam.flatten(2)  # (N, K, hw)
        if self.pool == "avg":
            return flat.mean(-1)
        if self.pool == "max":
            return flat.amax(-1)
        n = torch.log(torch.tensor(float(flat.shape[-1])))
        return (torch.logsumexp(self.lse_r * flat, -1) - n) / self.lse_r


def local_concept_vectors(f: torch.Tensor, cam: torch.Tensor, temperature: float) -> torch.Tensor:
    """CAM-weighted features: (N, d_f, h, w) and (N, K, h, w) -> (N, K, d_f)."""
    w = torch.softmax(cam.flatten(2) / temperature, dim=-1)  # (N, K, hw)
    return torch.einsum("nkp,ndp->nkd", w, f.flatten(2))


class Atlas(nn.Module):
    """Projector into the prototype space and M prototypes per concept."""

    def __init__(self, d_feature: int, n_concepts: int, cfg: CSRConfig) -> None:
        super().__init__()
        self.projector = nn.Sequential(
            nn.Linear(d_feature, d_feature), nn.GELU(), nn.Linear(d_feature, cfg.d_proj),
        )
        self.prototypes = nn.Parameter(torch.randn(n_concepts, cfg.n_prototypes, cfg.d_proj))  # (K, M, p)
        self.register_buffer("active", torch.ones(n_concepts, cfg.n_prototypes, dtype=torch.bool))
        self.background = nn.Parameter(torch.randn(cfg.n_prototypes, cfg.d_proj))  # (M, p)
        """Prototypes of "no concept" (training only; never in a map or the task head)."""
        self.register_buffer("source", torch.full((n_concepts, cfg.n_prototypes), -1, dtype=torch.long))
        """Training-study row each prototype was pushed onto (-1: not pushed)."""

    def embed(self, v: torch.Tensor) -> torch.Tensor:
        """Unit vectors in the prototype space: (..., d_f) -> (..., p)."""
        return F.normalize(self.projector(v), dim=-1)

    def unit_prototypes(self) -> torch.Tensor:
        return F.normalize(self.prototypes, dim=-1)  # (K, M, p)

    def similarity_maps(self, f: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of every patch to every prototype: (N, d_f, h, w) -> (N, K, M, h, w)."""
        z = self.embed(f.permute(0, 2, 3, 1))  # (N, h, w, p)
        return torch.einsum("nhwp,kmp->nkmhw", z, self.unit_prototypes())


def reweight_maps(maps: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """Spatial feedback on similarity maps: weights in [0, 1] scale the distance from the
    lowest similarity, so weight 1 keeps a patch and 0 sends it to -1 (never the maximum).

    maps (N, K, M, h, w); weights broadcastable to (N, K, 1, h, w) or None."""
    if weights is None:
        return maps
    return weights * (maps + 1.0) - 1.0


def prototype_scores(maps: torch.Tensor) -> torch.Tensor:
    """Each prototype's maximum similarity over patches: (N, K, M, h, w) -> (N, K, M)."""
    return maps.flatten(3).amax(-1)


def concept_maps(maps: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    """One map per concept: the maximum over its active prototypes -> (N, K, h, w)
    (-1 everywhere for a concept whose prototypes are all pruned)."""
    keep = active[None, :, :, None, None]  # (1, K, M, 1, 1)
    return maps.masked_fill(~keep, -1.0).amax(2)


class CSRModel(nn.Module):
    """Concept model, atlas and linear task head, composed as in the paper."""

    def __init__(self, d_in: int, n_concepts: int, n_classes: int, cfg: CSRConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.concept = ConceptModel(d_in, n_concepts, cfg)
        self.atlas = Atlas(cfg.d_feature, n_concepts, cfg)
        self.task_head = nn.Linear(n_concepts * cfg.n_prototypes, n_classes)
        self.register_buffer("score_offset", torch.zeros(n_concepts, cfg.n_prototypes))
        """Each prototype's mean score on training studies without its concept (set in stage 3)."""

    @property
    def n_concepts(self) -> int:
        return self.atlas.prototypes.shape[0]

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """Patch features (N, h, w, d) -> prototype similarity maps (N, K, M, h, w)."""
        f, _ = self.concept(x)
        return self.atlas.similarity_maps(f)

    def task_inputs(self, scores: torch.Tensor, rejected: torch.Tensor | None = None) -> torch.Tensor:
        """The task head's inputs from prototype scores (N, K, M): evidence above the
        prototype's absent-concept mean, clipped at 0, so 0 reads "concept absent"; pruned
        prototypes and the concepts in ``rejected`` ((N, K) or (K,) bool) are zeroed (the
        paper's atlas and concept interactions)."""
        x = torch.relu(scores - self.score_offset) * self.atlas.active.to(scores.dtype)
        if rejected is not None:
            x = x.masked_fill(rejected.to(torch.bool).expand(x.shape[:2])[..., None], 0.0)
        return x

    def task_logits(self, scores: torch.Tensor, rejected: torch.Tensor | None = None) -> torch.Tensor:
        """Prototype scores (N, K, M) -> task logits (N, C) (see :meth:`task_inputs`)."""
        return self.task_head(self.task_inputs(scores, rejected).flatten(1))
