"""INSIGHT's run: fit (or reload), baselines, per-finding metrics on the test split, maps."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from eval.methods.base import MethodContext
from eval.methods.insight import (InsightOptions, candidate_maps, localise, module_logits,
                                  shuffled_order, train_head)
from eval.methods.insight_model import InsightHead, location_prior, smoothmax
from eval.methods.masks import finding_vocabulary
from eval.methods.metrics import auroc_per_finding
from eval.methods.splits import SPLITS
from radinterp.metrics import mean_defined

log = logging.getLogger(__name__)

FEW_POSITIVES = 10
"""Below this many positive test studies a finding's AUROC / Dice is flagged as resting on too
few positives to mean much."""


def _fit_or_load(ctx: MethodContext, opts: InsightOptions, x: dict, y: dict, findings: list[str]
                 ) -> tuple[dict[str, InsightHead], dict[str, float]]:
    """The INSIGHT heads (and the shuffled-label baseline's): loaded from model.safetensors when
    a previous attempt of this run saved them, else trained and saved."""
    names = ["insight", "shuffled"] if opts.baselines else ["insight"]
    d, n_f = x["train"].shape[-1], len(findings)

    def fresh() -> InsightHead:
        return InsightHead(d, n_f, opts.hidden, opts.detect_kernel, opts.context_kernel,
                           opts.context_dilation, opts.dropout)

    if ctx.output.has_model():
        tensors, meta = ctx.output.load_model()
        if meta.get("findings") == findings:
            heads = {}
            for name in names:
                heads[name] = fresh()
                heads[name].load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items()
                                             if k.startswith(name + ".")})
                heads[name].eval()
            log.info("reloaded the trained heads from %s", ctx.output.root)
            return heads, meta["val_auroc"]
    y_tr = torch.from_numpy(y["train"]).float()
    heads, val = {}, {}
    heads["insight"], val["insight"] = train_head(x["train"], y_tr, x["val"], y["val"], opts,
                                                  ctx.seed, ctx.progress, "insight")
    if opts.baselines:
        perm = torch.from_numpy(shuffled_order(len(y_tr), ctx.seed))
        heads["shuffled"], val["shuffled"] = train_head(
            x["train"], y_tr[perm], x["val"], y["val"], opts, ctx.seed, ctx.progress,
            "insight (shuffled labels)")
    tensors = {f"{name}.{k}": v for name, h in heads.items() for k, v in h.state_dict().items()}
    ctx.output.save_model(tensors, {"findings": findings, "val_auroc": val,
                                    "options": opts.to_dict(), "site": ctx.site})
    return heads, val


def evaluate(method: Any, ctx: MethodContext) -> dict[str, Any]:
    opts: InsightOptions = method.options
    feats = ctx.features
    ids = {p: [s for s in ctx.split.part(p) if s in feats.study_ids] for p in SPLITS}
    train_studies = [ctx.by_id[s] for s in ids["train"]]
    findings = finding_vocabulary(train_studies, opts.min_positives)
    too_few = sorted(set(finding_vocabulary(train_studies)) - set(findings))
    if not findings:
        raise ValueError(f"no finding has {opts.min_positives} positive train studies; pass "
                         "more studies or a lower --opt min_positives")
    x = {p: feats.select(ids[p]) for p in SPLITS}  # (N_p, n, n, d)
    y = {p: ctx.labels(ids[p], findings) for p in SPLITS}  # (N_p, F) bool
    heads, val_auroc = _fit_or_load(ctx, opts, x, y, findings)
    y_fit = {"insight": y["train"], "shuffled": y["train"][shuffled_order(len(y["train"]), ctx.seed)]}
    logits = {name: {p: module_logits(h, x[p]) for p in SPLITS} for name, h in heads.items()}
    # per head: the location prior from its own train labels (image level), (F, n, n) logits
    priors = {name: location_prior(lg["train"][0], torch.from_numpy(y_fit[name]))
              for name, lg in logits.items()}
    cands = {name: {p: candidate_maps(*logits[name][p], priors[name], opts) for p in ("val", "test")}
             for name in heads}
    masks = {p: ctx.patch_masks(ids[p], findings, y[p]) for p in SPLITS}

    score = {name: torch.sigmoid(smoothmax(lg["test"][0] + lg["test"][1], opts.smoothmax_r)).numpy()
             for name, lg in logits.items()}  # (N_test, F)
    auroc = {name: auroc_per_finding(s, y["test"]) for name, s in score.items()}
    loc = {name: localise(c["val"], c["test"], masks["val"], masks["test"], y["val"], y["test"])
           for name, c in cands.items()}
    heat = {p: {"fused": torch.sigmoid(logits["insight"][p][0] + logits["insight"][p][1]).numpy()}
            for p in ("val", "test")}
    loc["heatmap"] = localise(heat["val"], heat["test"], masks["val"], masks["test"], y["val"],
                              y["test"])  # the paper's heatmap alone
    if opts.baselines:
        for name, prior in (("label_prior", torch.sigmoid(priors["insight"]).numpy()),
                            ("constant", _mask_prior(masks["train"], y["train"]))):  # (F, n, n)
            const = {p: {name: np.broadcast_to(prior, (len(ids[p]), *prior.shape))}
                     for p in ("val", "test")}
            loc[name] = localise(const["val"], const["test"], masks["val"], masks["test"],
                                 y["val"], y["test"])

    table = {}
    for j, f in enumerate(findings):
        n_pos = int(y["test"][:, j].sum())
        row: dict[str, Any] = {"n_pos_train": int(y["train"][:, j].sum()), "n_pos_test": n_pos,
                               "n_test": len(ids["test"]), "few_positives": n_pos < FEW_POSITIVES}
        for name, a in auroc.items():
            row["auroc" if name == "insight" else f"auroc_{name}"] = _num(a[j])
        for name, per in loc.items():
            sfx = "" if name == "insight" else f"_{name}"
            for key in ("dice", "iou", "pointing_game"):
                row[key + sfx] = per[f][key]
        row.update({k: loc["insight"][f][k] for k in ("n_scored", "n_skipped_no_mask",
                                                      "n_outside_crop", "map", "threshold",
                                                      "threshold_mode", "val_dice")})
        table[f] = row

    first = next(iter(cands["insight"]["test"]))  # the map of a finding nothing was chosen for
    chosen = np.stack([cands["insight"]["test"][table[f]["map"] or first][:, j]
                       for j, f in enumerate(findings)], 1)  # (N_test, F, n, n)
    det, con = (torch.sigmoid(t).numpy() for t in logits["insight"]["test"])
    _write_maps(ctx, ids["test"], (score["insight"], heat["test"]["fused"], det, con, chosen),
                findings)
    with_masks = [f for f in findings if table[f]["dice"] is not None]
    summary = {"findings_with_masks": with_masks, "findings_too_few_train_positives": too_few}
    for name in loc:
        sfx = "" if name == "insight" else f"_{name}"
        summary["mean_dice" + sfx] = mean_defined(table[f]["dice" + sfx] for f in with_masks)
        summary["mean_iou" + sfx] = mean_defined(table[f]["iou" + sfx] for f in with_masks)
        summary["mean_pointing_game" + sfx] = mean_defined(table[f]["pointing_game" + sfx]
                                                           for f in with_masks)
    summary["mean_val_dice"] = mean_defined(table[f]["val_dice"] for f in with_masks)
    for name in auroc:
        summary["mean_auroc" if name == "insight" else f"mean_auroc_{name}"] = \
            mean_defined(_num(v) for v in auroc[name])
    return {"findings": findings, "per_finding": table, "summary": summary,
            "val_mean_auroc": val_auroc,
            "baselines": {"heatmap": "the paper's fused heatmap alone (no prior, no detection "
                                     "readout)",
                          **({"shuffled": "same heads trained on train labels permuted across "
                                          "studies (their prior from those labels)",
                              "label_prior": "the location prior learned from image labels as "
                                             "every study's map (no image)",
                              "constant": "the finding's mean train patch mask as every "
                                          "study's map (saw masks)"} if opts.baselines else {})},
            "skipped_no_features": dict(feats.skipped),
            "masks_missing_test": {f: dict(c) for f, c in masks["test"].missing.items()}}


def _num(v: float) -> float | None:
    return None if v != v else float(v)


def _mask_prior(masks, y: np.ndarray) -> np.ndarray:
    """(F, n, n): mean mask fraction over the positive studies with masks (0 where none)."""
    known = masks.known & y  # (N, F)
    num = (masks.fraction * known[..., None, None]).sum(0)  # (F, n, n)
    return num / np.maximum(known.sum(0), 1)[:, None, None]


def _write_maps(ctx: MethodContext, test_ids: list[str], pred: tuple, findings: list[str]) -> None:
    """Per test study: score (F,), heatmap, detection, context, localisation (F, n, n)."""
    names = ("score", "heatmap", "detection", "context", "localisation")
    for k, sid in enumerate(test_ids):
        if ctx.output.has_map(sid):
            continue
        ctx.output.save_map(sid, {n: torch.from_numpy(np.ascontiguousarray(a[k])).float()
                                  for n, a in zip(names, pred, strict=True)},
                            {"findings": findings, "site": ctx.site})


def markdown_table(metrics: dict[str, Any]) -> str:
    """Per-finding table of an INSIGHT ``metrics.json`` (each number beside its baselines)."""
    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}"

    base = ("heatmap", "label_prior", "shuffled", "constant")
    head = ("| finding | test pos | AUROC (shuffled) | Dice | Dice: paper heatmap / label prior / "
            "shuffled / constant | IoU (constant) | pointing (constant) | map (threshold) | "
            "scored / skipped no mask |\n|---|---|---|---|---|---|---|---|---|\n")
    rows = []
    for name, r in metrics["per_finding"].items():
        few = "*" if r["few_positives"] else ""
        rows.append(
            f"| {name} | {r['n_pos_test']}{few} | {f(r['auroc'])} ({f(r.get('auroc_shuffled'))}) | "
            f"{f(r['dice'])} | {' / '.join(f(r.get('dice_' + b)) for b in base)} | "
            f"{f(r['iou'])} ({f(r.get('iou_constant'))}) | "
            f"{f(r['pointing_game'])} ({f(r.get('pointing_game_constant'))}) | "
            f"{r.get('map') or '-'} ({r.get('threshold_mode') or '-'}) | "
            f"{r['n_scored']} / {r['n_skipped_no_mask']} |")
    s = metrics["summary"]
    rows.append(f"| **mean** | | {f(s.get('mean_auroc'))} ({f(s.get('mean_auroc_shuffled'))}) | "
                f"**{f(s.get('mean_dice'))}** | "
                f"{' / '.join(f(s.get('mean_dice_' + b)) for b in base)} | "
                f"{f(s.get('mean_iou'))} ({f(s.get('mean_iou_constant'))}) | "
                f"{f(s.get('mean_pointing_game'))} ({f(s.get('mean_pointing_game_constant'))}) | | |")
    return head + "\n".join(rows) + "\n"
