"""CSR's three training stages on plain tensors (frozen patch features + labels).

1. concept model: BCE of pooled CAM logits against the concept labels;
2. atlas: local concept vectors of the concepts present in a study, projected, pulled to their
   concept's M prototypes and pushed from every other concept's (multi-prototype contrastive
   loss); the concept model is frozen;
3. task head: linear on the prototypes' maximum similarity over patches; all else frozen.

Each stage keeps the epoch with the lowest validation loss (model selection on validation).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from eval.methods.csr.config import CSRConfig
from eval.methods.csr.model import CSRModel, local_concept_vectors, prototype_scores

log = logging.getLogger(__name__)


@dataclass
class CSRSplit:
    """One split's tensors."""

    x: torch.Tensor
    """Patch features (N, h, w, d)."""
    concepts: torch.Tensor
    """Concept labels (N, K) in {0, 1}."""
    task: torch.Tensor
    """Task labels (N, C) in {0, 1} (one-hot when the task's classes are exclusive)."""

    def __post_init__(self) -> None:
        if self.x.ndim != 4:
            raise ValueError(f"patch features must be (N, h, w, d), got shape {tuple(self.x.shape)}; "
                             "pass features on the patch grid")
        n = self.x.shape[0]
        for name in ("concepts", "task"):
            t = getattr(self, name)
            if t.ndim != 2 or t.shape[0] != n:
                raise ValueError(f"{name} labels must be (N={n}, ...), got {tuple(t.shape)}; "
                                 "pass one row of labels per study")
            if not bool(((t == 0) | (t == 1)).all()):
                raise ValueError(f"{name} labels must be 0 or 1; map uncertain labels first")
        if n == 0:
            raise ValueError("a split holds no study; pass more studies or change the split fractions")


def multi_prototype_contrastive_loss(z: torch.Tensor, concept: torch.Tensor,
                                     prototypes: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean over vectors of -log( sum_m exp(<z, p_km>/tau) / sum_k'm' exp(<z, p_k'm'>/tau) ).

    z (P, p) unit vectors, concept (P,) their concept index, prototypes (K, M, p) unit."""
    logits = torch.einsum("pd,kmd->pkm", z, prototypes) / tau  # (P, K, M)
    pos = torch.logsumexp(logits[torch.arange(len(z)), concept], dim=-1)  # (P,)
    return (torch.logsumexp(logits.flatten(1), dim=-1) - pos).mean()


def _fit(params: list[nn.Parameter], modules: list[nn.Module], n: int,
         loss_fn: Callable[[torch.Tensor], torch.Tensor], val_loss: Callable[[], float],
         epochs: int, cfg: CSRConfig, desc: str, progress: bool) -> float:
    """AdamW over shuffled index batches; restores the modules' best-validation state."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    best, best_state = float("inf"), None
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for _ in bar:
        for m in modules:
            m.train()
        for idx in torch.randperm(n, generator=gen).split(cfg.batch_size):
            opt.zero_grad()
            loss_fn(idx).backward()
            opt.step()
        for m in modules:
            m.eval()
        with torch.no_grad():
            v = val_loss()
        if v < best:
            best, best_state = v, [copy.deepcopy(m.state_dict()) for m in modules]
        bar.set_postfix(val=f"{v:.4f}")
    assert best_state is not None
    for m, s in zip(modules, best_state):
        m.load_state_dict(s)
    log.info("%s: best validation loss %.4f", desc, best)
    return best


def train_concept_model(model: CSRModel, train: CSRSplit, val: CSRSplit, progress: bool = True) -> float:
    """Stage 1: BCE on concept labels; returns the best validation loss."""
    cm, cfg = model.concept, model.cfg

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(cm.logits(cm(x)[1]), y)

    return _fit(list(cm.parameters()), [cm], len(train.x),
                lambda i: loss(train.x[i], train.concepts[i]),
                lambda: float(loss(val.x, val.concepts)), cfg.epochs_concept, cfg,
                "csr concept model", progress)


@torch.no_grad()
def concept_vectors(model: CSRModel, x: torch.Tensor) -> torch.Tensor:
    """Local concept vectors of the frozen concept model: (N, h, w, d) -> (N, K, d_f)."""
    model.concept.eval()
    f, cam = model.concept(x)
    return local_concept_vectors(f, cam, model.cfg.cam_temperature)


def _present_pairs(v: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Vectors (P, d_f) of the (study, concept) pairs with the concept present, their concept
    (P,) and their study row (P,)."""
    n_idx, k_idx = y.nonzero(as_tuple=True)
    return v[n_idx, k_idx], k_idx, n_idx


@torch.no_grad()
def push_prototypes(model: CSRModel, v: torch.Tensor, concept: torch.Tensor, study: torch.Tensor) -> None:
    """Move each prototype onto the nearest projected training vector of its own concept and
    record that vector's study row in ``atlas.source`` (concepts without vectors keep theirs)."""
    atlas = model.atlas
    z = atlas.embed(v)  # (P, p)
    protos = atlas.unit_prototypes()  # (K, M, p)
    for k in range(model.n_concepts):
        rows = (concept == k).nonzero(as_tuple=True)[0]
        if len(rows) == 0:
            continue
        nearest = (protos[k] @ z[rows].T).argmax(1)  # (M,)
        atlas.prototypes[k] = z[rows[nearest]]
        atlas.source[k] = study[rows[nearest]]


def train_atlas(model: CSRModel, train: CSRSplit, val: CSRSplit, progress: bool = True) -> float:
    """Stage 2: projector + prototypes under the multi-prototype contrastive loss (with
    ``cfg.background``, absent concepts' vectors count as class K, the background)."""
    atlas, cfg = model.atlas, model.cfg
    n_k = model.n_concepts
    v_all_tr, v_all_va = concept_vectors(model, train.x), concept_vectors(model, val.x)
    v_tr, k_tr, n_tr = _present_pairs(v_all_tr, train.concepts)
    if len(v_tr) == 0:
        raise ValueError("no training study has any concept present; pass studies with findings")
    pairs_tr, pairs_va = (v_tr, k_tr), _present_pairs(v_all_va, val.concepts)[:2]
    if cfg.background:  # absent (study, concept) pairs -> class K
        pairs_tr = _with_background(pairs_tr, v_all_tr, train.concepts)
        pairs_va = _with_background(pairs_va, v_all_va, val.concepts)
    with torch.no_grad():  # start each prototype at a projected vector of its concept
        gen = torch.Generator().manual_seed(cfg.seed)
        z = atlas.embed(pairs_tr[0])  # (P, p)
        for k in range(n_k + 1):
            zk = z[pairs_tr[1] == k]
            if len(zk):
                pick = torch.randint(len(zk), (cfg.n_prototypes,), generator=gen)
                start = zk[pick] + 0.1 * torch.randn(zk[pick].shape, generator=gen)
                (atlas.prototypes[k] if k < n_k else atlas.background).copy_(start)

    def loss(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        protos = atlas.unit_prototypes()
        if cfg.background:
            protos = torch.cat([protos, F.normalize(atlas.background, dim=-1)[None]])  # (K + 1, M, p)
        return multi_prototype_contrastive_loss(atlas.embed(v), k, protos, cfg.tau)

    v_fit, k_fit = pairs_tr
    v_val, k_val = pairs_va if len(pairs_va[0]) else pairs_tr
    best = _fit(list(atlas.parameters()), [atlas], len(v_fit), lambda i: loss(v_fit[i], k_fit[i]),
                lambda: float(loss(v_val, k_val)), cfg.epochs_proto, cfg, "csr atlas", progress)
    if cfg.push:
        push_prototypes(model, v_tr, k_tr, n_tr)
    return best


def _with_background(pairs: tuple[torch.Tensor, torch.Tensor], v: torch.Tensor, y: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``pairs`` plus every absent (study, concept) vector labelled K (the background)."""
    n_idx, k_idx = (y == 0).nonzero(as_tuple=True)
    bg = torch.full((len(n_idx),), y.shape[1], dtype=torch.long)
    return torch.cat([pairs[0], v[n_idx, k_idx]]), torch.cat([pairs[1], bg])


@torch.no_grad()
def similarity_scores(model: CSRModel, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Prototype scores (N, K, M): maximum similarity over patches."""
    model.eval()
    out = [prototype_scores(model.maps(xc)) for xc in x.split(chunk)]
    return torch.cat(out)


def task_loss(logits: torch.Tensor, target: torch.Tensor, exclusive: bool) -> torch.Tensor:
    """Cross-entropy over exclusive classes, else BCE per class."""
    if exclusive:
        return F.cross_entropy(logits, target.argmax(1))
    return F.binary_cross_entropy_with_logits(logits, target)


def train_task_head(model: CSRModel, train: CSRSplit, val: CSRSplit, exclusive: bool,
                    progress: bool = True) -> float:
    """Stage 3: the linear task head on the prototype scores (their absent-concept means,
    ``score_offset``, are measured on the train split first)."""
    head, cfg = model.task_head, model.cfg
    s_tr, s_va = similarity_scores(model, train.x), similarity_scores(model, val.x)  # (N, K, M)
    absent = (train.concepts == 0).float()[..., None]  # (N, K, 1)
    model.score_offset.copy_((s_tr * absent).sum(0) / absent.sum(0).clamp(min=1))

    def loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return task_loss(model.task_logits(s), t, exclusive)

    return _fit(list(head.parameters()), [head], len(s_tr), lambda i: loss(s_tr[i], train.task[i]),
                lambda: float(loss(s_va, val.task)), cfg.epochs_task, cfg, "csr task head", progress)


def train_csr(train: CSRSplit, val: CSRSplit, cfg: CSRConfig, exclusive: bool,
              progress: bool = True) -> tuple[CSRModel, dict[str, float]]:
    """All three stages; returns the model and each stage's best validation loss."""
    if train.x.shape[1:] != val.x.shape[1:] or train.concepts.shape[1] != val.concepts.shape[1]:
        raise ValueError("train and validation differ in feature or concept shape; "
                         "pass splits of one dataset")
    torch.manual_seed(cfg.seed)
    model = CSRModel(train.x.shape[-1], train.concepts.shape[1], train.task.shape[1], cfg)
    losses = {
        "concept_bce": train_concept_model(model, train, val, progress),
        "atlas_contrastive": train_atlas(model, train, val, progress),
        "task": train_task_head(model, train, val, exclusive, progress),
    }
    model.eval()
    return model, losses
