"""INSIGHT (arXiv 2412.02012) as a reference method: per-finding heatmaps from image labels.

``radinterp method insight --data DIR --out OUT`` trains :class:`InsightHead` on the train
split's patch features with the studies' findings as image-level labels (model selection on
the validation split's mean AUROC), then on the test split reports per finding:

- AUROC of the SmoothMax image score;
- pointing game, Dice and IoU of a localisation map thresholded per finding. The map, its
  threshold and whether the threshold is absolute or relative to each map's maximum are the
  ones with the best mean Dice on the validation split's positive studies with masks
  (phantoms: the planted masks); positives without a mask are skipped and counted. The
  candidate maps: the paper's fused heatmap and the detection module's map, each alone or
  plus ``w`` x a location prior learned from image labels only
  (:func:`~eval.methods.insight_model.location_prior`; an addition to the paper, w in
  ``prior_weights``).

Beside each number its baselines: the same heads trained on shuffled labels (train labels
permuted across studies; their prior from those labels), the paper's heatmap alone (no prior,
no detection readout), the label-derived prior alone as every study's map (no image), and a
constant map, the finding's mean training mask (a location prior that knows where the
finding usually is but not where it is now; the only number here that saw masks in training).
Per test study ``maps/<study>.safetensors`` holds ``heatmap``, ``detection``, ``context``
(each (F, n, n), sigmoids), ``localisation`` (the chosen map of each finding) and ``score`` (F,).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from eval.methods.base import METHODS, MethodContext, MethodOptions, ReferenceMethod
from eval.methods.insight_model import InsightHead, insight_loss, smoothmax
from eval.methods.localisation import best_dice_threshold, localisation_scores
from eval.methods.metrics import auroc_per_finding
from radinterp.metrics import mean_defined

log = logging.getLogger(__name__)

READOUTS = ("fused", "detection")
"""Maps a localisation may read: the fused heatmap (the paper's) and the detection module's."""


@dataclass
class InsightOptions(MethodOptions):
    """INSIGHT's architecture, training and evaluation settings."""

    hidden: int = 32
    """Channels inside each module (the context kernel's cost grows with its square)."""
    detect_kernel: int = 1
    """Detection module's spatial kernel (small: local evidence). On the demo model's 8 x 8
    grid a patch is already 28 px; 3 blurs each detection over its neighbours (planted-block
    Dice 0.71 vs 0.87 with 1 in the tests' setting)."""
    context_kernel: int = 5
    """Context module's spatial kernel (large: the surrounding anatomy)."""
    context_dilation: int = 2
    """Dilation of the context kernel (5 x 5 dilated by 2 spans 9 x 9 patches)."""
    dropout: float = 0.1
    """Channel dropout after each module's first layer."""
    smoothmax_r: float = 0.5
    """SmoothMax sharpness r: 0 is mean pooling, large r is max pooling. 0.5 had the best
    validation Dice on 1,500 phantoms among 0.25, 0.5, 1, 2, 4 (docs/methods.md)."""
    spectral_decoupling: float = 0.01
    """Weight of the spectral-decoupling penalty (mean squared image logit)."""
    epochs: int = 40
    """Training epochs over the train split."""
    batch_size: int = 64
    """Studies per optimiser step."""
    lr: float = 5e-3
    """AdamW learning rate."""
    weight_decay: float = 1e-3
    """AdamW weight decay."""
    eval_every: int = 5
    """Epochs between validation checks (the best validation mean AUROC is kept)."""
    min_positives: int = 5
    """A finding needs this many positive train studies to be modelled."""
    baselines: bool = True
    """Also train the shuffled-label heads and score the constant-map baselines."""
    localise_from: tuple[str, ...] = ("fused", "detection")
    """Maps a finding's localisation may read (picked per finding on validation Dice): the
    paper's ``fused`` heatmap, the ``detection`` module's map. On 1,500 phantoms the fused map
    ranked a study's mask patches worse than the detection map (within-study AUROC 0.75 vs
    0.80): the context module's large kernel spreads each finding's evidence."""
    prior_weights: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
    """Candidate weights of the label-derived location prior added to the maps' logits (picked
    per finding on validation Dice); ``0`` alone: the maps without the prior."""

    def __post_init__(self) -> None:
        for name in ("hidden", "detect_kernel", "context_kernel", "context_dilation", "epochs",
                     "batch_size", "eval_every", "min_positives"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}; pass --opt {name}=N")
        for name in ("detect_kernel", "context_kernel"):
            if getattr(self, name) % 2 == 0:
                raise ValueError(f"{name} {getattr(self, name)} is even; pass an odd kernel size "
                                 "(the map keeps the patch grid's shape)")
        if self.context_kernel <= self.detect_kernel:
            raise ValueError(f"context_kernel {self.context_kernel} must exceed detect_kernel "
                             f"{self.detect_kernel}; pass a larger --opt context_kernel")
        if self.smoothmax_r <= 0:
            raise ValueError(f"smoothmax_r must be > 0, got {self.smoothmax_r}; pass e.g. 4")
        bad = sorted(set(self.localise_from) - set(READOUTS))
        if bad or not self.localise_from:
            raise ValueError(f"localise_from {list(self.localise_from)} must name some of "
                             f"{', '.join(READOUTS)}; pass e.g. --opt localise_from=fused,detection")
        if not self.prior_weights or min(self.prior_weights) < 0:
            raise ValueError(f"prior_weights {list(self.prior_weights)} must be >= 0 and not "
                             "empty; pass e.g. --opt prior_weights=0 (no prior) or 0,1,2,4")
        if not 0 <= self.dropout < 1 or self.spectral_decoupling < 0 or self.lr <= 0:
            raise ValueError("dropout must be in [0, 1), spectral_decoupling >= 0 and lr > 0; "
                             "fix the --opt values")


def train_head(x_tr: torch.Tensor, y_tr: torch.Tensor, x_va: torch.Tensor, y_va: np.ndarray,
               opts: InsightOptions, seed: int, progress: bool = False, desc: str = "insight"
               ) -> tuple[InsightHead, float]:
    """Fit a head on (N, n, n, d) features and (N, F) labels; keep the epoch with the best
    validation mean AUROC. Returns (head in eval mode, that AUROC)."""
    torch.manual_seed(seed)
    head = InsightHead(x_tr.shape[-1], y_tr.shape[1], opts.hidden, opts.detect_kernel,
                       opts.context_kernel, opts.context_dilation, opts.dropout)
    head.fit_standardisation(x_tr)
    opt = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, opts.epochs)
    gen = torch.Generator().manual_seed(seed)
    best, best_state = -np.inf, copy.deepcopy(head.state_dict())
    for epoch in tqdm(range(opts.epochs), desc=desc, disable=not progress):
        head.train()
        for idx in torch.randperm(len(x_tr), generator=gen).split(opts.batch_size):
            logits = smoothmax(head(x_tr[idx]), opts.smoothmax_r)  # (B, F)
            loss = insight_loss(logits, y_tr[idx], opts.spectral_decoupling)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if (epoch + 1) % opts.eval_every == 0 or epoch + 1 == opts.epochs:
            score = mean_defined(auroc_per_finding(predict(head, x_va, opts)[0], y_va))
            score = -np.inf if score is None else score
            if score > best:
                best, best_state = score, copy.deepcopy(head.state_dict())
    head.load_state_dict(best_state)
    return head.eval(), float(best)


@torch.no_grad()
def module_logits(head: InsightHead, feats: torch.Tensor, batch: int = 512
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(detection, context) logit maps, each (N, F, n, n), of (N, n, n, d) features."""
    head.eval()
    out: list[list[torch.Tensor]] = [[], []]
    for lo in range(0, len(feats), batch):
        for k, t in enumerate(head.modules_logits(feats[lo:lo + batch])):
            out[k].append(t)
    return torch.cat(out[0]), torch.cat(out[1])


def predict(head: InsightHead, feats: torch.Tensor, opts: InsightOptions, batch: int = 512
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image scores (N, F), heatmaps, detection maps, context maps (N, F, n, n)), sigmoids."""
    det, ctx = module_logits(head, feats, batch)
    fused = det + ctx
    return tuple(torch.sigmoid(t).numpy()  # type: ignore[return-value]
                 for t in (smoothmax(fused, opts.smoothmax_r), fused, det, ctx))


def candidate_maps(det: torch.Tensor, ctx: torch.Tensor, prior: torch.Tensor,
                   opts: InsightOptions) -> dict[str, np.ndarray]:
    """Localisation candidates of (N, F, n, n) module logits: ``readout`` or
    ``readout+prior<w>`` -> (N, F, n, n) sigmoid maps, with ``prior`` (F, n, n) in logits."""
    base = {"fused": det + ctx, "detection": det}
    out = {}
    for name in opts.localise_from:
        for w in opts.prior_weights:
            key = name if w == 0 else f"{name}+prior{w:g}"
            out[key] = torch.sigmoid(base[name] + w * prior).numpy()
    return out


def relative(maps: np.ndarray) -> np.ndarray:
    """(N, F, n, n) maps divided by each map's own maximum (a map of zeros stays zero)."""
    top = maps.max(axis=(2, 3), keepdims=True)
    return maps / np.where(top > 0, top, 1.0)


def localise(cands_va: dict[str, np.ndarray], cands_te: dict[str, np.ndarray], masks_va,
             masks_te, pos_va: np.ndarray, pos_te: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per finding: a candidate map (name -> (N, F, n, n), the same names in both splits) and a
    threshold on it, absolute or relative to each map's maximum, whichever gives the highest
    mean Dice on the validation positives with masks; scored on test (``map``,
    ``threshold_mode``, ``threshold``, ``val_dice`` beside the scores)."""
    tgt_va = masks_va.target()
    views = {(name, mode): (va if mode == "absolute" else relative(va),
                            cands_te[name] if mode == "absolute" else relative(cands_te[name]))
             for name, va in cands_va.items() for mode in ("absolute", "relative")}
    first = next(iter(views))
    chosen: list[tuple[tuple[str, str], float, float | None]] = []
    for j in range(pos_va.shape[1]):
        rows = np.flatnonzero(pos_va[:, j] & masks_va.known[:, j] & tgt_va[:, j].any((1, 2)))
        if not rows.size:
            chosen.append((first, float("inf"), None))  # nothing to choose on: no Dice
            continue
        best = max(((view, *best_dice_threshold(va[rows, j], tgt_va[rows, j]))
                    for view, (va, _) in views.items()), key=lambda c: c[2])
        chosen.append(best)
    out = {}
    for view in dict.fromkeys(c[0] for c in chosen):
        cols = [j for j, c in enumerate(chosen) if c[0] == view]
        thr = [chosen[j][1] if j in cols else float("inf") for j in range(len(chosen))]
        scores = localisation_scores(views[view][1], masks_te, pos_te, thr)
        names = list(scores)
        for j in cols:
            row = scores[names[j]].summary()
            finite = np.isfinite(chosen[j][1])
            row.update(map=view[0], threshold=chosen[j][1], threshold_mode=view[1],
                       val_dice=chosen[j][2])
            if not finite:  # no validation positive with a mask: nothing was chosen
                row.update(dice=None, iou=None, map=None, threshold=None, threshold_mode=None)
            out[names[j]] = row
    return {name: out[name] for name in masks_te.findings}


def shuffled_order(n: int, seed: int) -> np.ndarray:
    """The permutation of the n train studies' labels the shuffled-label heads train on."""
    return np.random.default_rng(seed + 1).permutation(n)


@METHODS.register("insight")
class Insight(ReferenceMethod):
    """INSIGHT heatmaps: detection + context modules, SmoothMax, BCE + spectral decoupling."""

    name = "insight"
    Options = InsightOptions

    def run(self, ctx: MethodContext) -> dict[str, Any]:
        from eval.methods.insight_report import evaluate

        return evaluate(self, ctx)


__all__ = ["READOUTS", "Insight", "InsightOptions", "candidate_maps", "localise", "module_logits",
           "predict", "relative", "shuffled_order", "train_head"]
