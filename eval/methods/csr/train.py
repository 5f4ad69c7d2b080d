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


def _present_pairs(v: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors (P, d_f) of the (study, concept) pairs with the concept present, and their concept."""
    n_idx, k_idx = y.nonzero(as_tuple=True)
    return v[n_idx, k_idx], k_idx


def train_atlas(model: CSRModel, train: CSRSplit, val: CSRSplit, progress: bool = True) -> float:
    """Stage 2: projector + prototypes under the multi-prototype contrastive loss."""
    atlas, cfg = model.atlas, model.cfg
    v_tr, k_tr = _present_pairs(concept_vectors(model, train.x), train.concepts)
    v_va, k_va = _present_pairs(concept_vectors(model, val.x), val.concepts)
    if len(v_tr) == 0:
        raise ValueError("no training study has any concept present; pass studies with findings")
    with torch.no_grad():  # start each prototype at a projected vector of its concept
        gen = torch.Generator().manual_seed(cfg.seed)
        z = atlas.embed(v_tr)  # (P, p)
        for k in range(model.n_concepts):
            zk = z[k_tr == k]
            if len(zk):
                pick = torch.randint(len(zk), (cfg.n_prototypes,), generator=gen)
                atlas.prototypes[k] = zk[pick] + 0.1 * torch.randn(zk[pick].shape, generator=gen)

    def loss(v: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return multi_prototype_contrastive_loss(atlas.embed(v), k, atlas.unit_prototypes(), cfg.tau)

    val_fn = (lambda: float(loss(v_va, k_va))) if len(v_va) else (lambda: float(loss(v_tr, k_tr)))
    return _fit(list(atlas.parameters()), [atlas], len(v_tr), lambda i: loss(v_tr[i], k_tr[i]),
                val_fn, cfg.epochs_proto, cfg, "csr atlas", progress)


@torch.no_grad()
def similarity_scores(model: CSRModel, x: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    """Prototype scores (N, K, M): maximum similarity over patches, pruned prototypes 0."""
    model.eval()
    out = [prototype_scores(model.maps(xc), model.atlas.active) for xc in x.split(chunk)]
    return torch.cat(out)


def task_loss(logits: torch.Tensor, target: torch.Tensor, exclusive: bool) -> torch.Tensor:
    """Cross-entropy over exclusive classes, else BCE per class."""
    if exclusive:
        return F.cross_entropy(logits, target.argmax(1))
    return F.binary_cross_entropy_with_logits(logits, target)


def train_task_head(model: CSRModel, train: CSRSplit, val: CSRSplit, exclusive: bool,
                    progress: bool = True) -> float:
    """Stage 3: the linear task head on the prototype scores."""
    head, cfg = model.task_head, model.cfg
    s_tr, s_va = similarity_scores(model, train.x), similarity_scores(model, val.x)

    def loss(s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return task_loss(head(s.flatten(1)), t, exclusive)

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
