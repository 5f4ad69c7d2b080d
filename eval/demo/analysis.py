"""The demo's later stages, on the SAE of :mod:`eval.demo.stages`: SAE eval -> autointerp ->
steering -> reference methods -> bridge -> browser. Each returns its headline result (JSON),
every number beside its baseline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from eval.demo.stages import Ctx

log = logging.getLogger(__name__)

STEER_METHODS = ["add", "diffmean"]
"""Steering arms besides the random directions: the SAE feature and the difference of means."""
METHOD_SPLIT = (0.5, 0.1, 0.4)
"""Train / validation / test of the reference methods (the bridge reports on the test part)."""


def sae_eval(ctx: Ctx, where: Path) -> dict[str, Any]:
    """Reconstruction (held-out rows), fidelity (splice) and probing, trained vs random SAE."""
    from eval.sae_eval import EvalConfig, run_eval

    cfg = ctx.cfg
    fid = cfg.fidelity_studies if cfg.phantom else 0  # the splice scores teacher-forced reports
    m = run_eval(EvalConfig(sae=str(ctx.sae_dir), acts=str(ctx.acts), out=str(where),
                            data=ctx.data, fidelity_studies=fid, progress=cfg.progress))
    ev = (m.get("reconstruction") or {}).get("trained", {}).get("overall", {})
    return {"metrics": str(where / "metrics.json"), "explained_variance": ev.get("explained_variance"),
            "fidelity": bool(m.get("fidelity"))}


def autointerp(ctx: Ctx, where: Path, llm: bool = False) -> dict[str, Any]:
    """The enrichment explainer on every latent that fires (``llm``: the local LLM explainer
    on the ``llm_features`` most frequent), each beside a random SAE's latent."""
    from autointerp.config import AutointerpConfig
    from autointerp.pipeline import run_autointerp

    cfg = ctx.cfg
    d_sae = cfg.expansion * ctx.store().d_model
    acfg = AutointerpConfig(sae=str(ctx.sae_dir), acts=str(ctx.acts), out=str(where),
                            data=ctx.data, top=cfg.llm_features if llm else (cfg.explain_top or d_sae),
                            explainers=["llm"] if llm else ["enrichment"], scorers=cfg.scorers,
                            progress=cfg.progress)
    s = run_autointerp(acfg)
    out = {"n_latents": s["n_latents"], "n_failed": s["n_failed"], "scorers": s["scorers"]}
    if "planted" in s:
        out["planted"] = s["planted"]
    return out


def steering(ctx: Ctx, where: Path) -> dict[str, Any]:
    """Steer toward one finding on held-out phantoms that lack it (its planting rate set to 0,
    so every study counts): the SAE feature picked by AUROC, beside random directions of equal
    norm and the difference of means."""
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms
    from radinterp.data.phantoms.config import default_rates
    from radinterp.data.phantoms.findings import finding_label
    from steering.evaluate import SteerConfig, run_steering

    cfg = ctx.cfg
    rates = {f: p for f, p in default_rates().items() if finding_label(f) != cfg.steer_finding}
    held = generate_phantoms(PhantomConfig(n=cfg.steer_n, seed=cfg.seed + 1, size=224,
                                           findings=rates), where / "heldout", progress=cfg.progress)
    scfg = SteerConfig(data=str(held), out=str(where / "run"), model=cfg.model, sae=str(ctx.sae_dir),
                       acts=str(ctx.acts), site=cfg.site, findings=[cfg.steer_finding],
                       methods=list(STEER_METHODS), coefs=list(cfg.steer_coefs), selection=["auroc"],
                       n=cfg.steer_n, max_new_tokens=cfg.steer_tokens, progress=cfg.progress)
    res = run_steering(scfg, adapter=ctx.adapter)
    rows = [r for r in res["rows"] if r["split"] == "test" and r["target"] == cfg.steer_finding]
    by = {r["method"]: r for r in rows}
    add, dm = by.get("add", {}), by.get("diffmean", {})
    feature = (res.get("selection", {}).get(cfg.steer_finding, {}).get("picked", {}) or {}).get("auroc")
    return {"finding": cfg.steer_finding, "feature": feature, "n_test": res["n_test"],
            "html": str(where / "run" / "steering.html"),
            "baseline_rate": add.get("baseline_rate"), "sae_rate": add.get("target_rate"),
            "random_rate": add.get("random_control_rate"), "diffmean_rate": dm.get("target_rate"),
            "diffmean_random_rate": dm.get("random_control_rate"), "coef": add.get("coef")}


def method_options(name: str, epochs: int, phantom: bool, min_positives: int) -> dict[str, Any]:
    """Small settings of each reference method (``epochs`` for every training stage)."""
    opts = {
        "csr": {"epochs_concept": epochs, "epochs_proto": epochs, "epochs_task": 2 * epochs},
        "insight": {"epochs": epochs, "eval_every": min(5, epochs)},
        "radiomics": {"size": 112, "epochs": epochs, "learned": False,
                      **({} if phantom else {"persona": "none"})},
    }
    return {**opts.get(name, {}), "min_positives": min_positives}


def methods(ctx: Ctx, where: Path) -> dict[str, Any]:
    """CSR, INSIGHT and the radiomic fingerprint on the captured studies (small settings)."""
    from eval.methods import MethodRunConfig, run_method

    cfg = ctx.cfg
    out: dict[str, Any] = {}
    for name in cfg.methods:
        mcfg = MethodRunConfig(method=name, data=ctx.data, out=str(where / name), model=cfg.model,
                               model_options=ctx.model_options, split=METHOD_SPLIT,
                               max_studies=ctx.max_studies, progress=cfg.progress,
                               options={**method_options(name, cfg.method_epochs, cfg.phantom,
                                                        cfg.min_positives),
                                        **cfg.method_opts.get(name, {})})
        m = run_method(mcfg)
        out[name] = {"root": str(where / name), "headline": m.get("headline"),
                     "seconds": m.get("seconds")}
    return out


def bridge(ctx: Ctx, where: Path, method_dirs: list[str]) -> dict[str, Any]:
    """SAE features vs the methods' maps, the labels and (phantoms) the planted findings,
    beside a random SAE of the same L0 and a label permutation."""
    from eval.bridges import BridgeConfig, run_bridge

    cfg = ctx.cfg
    twins = str(ctx.out / "twins" / "acts") if (ctx.out / "twins" / "acts").is_dir() else None
    res = run_bridge(BridgeConfig(sae=str(ctx.sae_dir), acts=str(ctx.acts), out=str(where),
                                  methods=method_dirs, data=ctx.data, twins=twins,
                                  n_permutations=cfg.n_permutations, progress=cfg.progress))
    return {"html": str(where / "bridge.html"), "associations": res["associations"],
            "localisation": res["localisation"]}


def browser(ctx: Ctx, where: Path, done: dict[str, bool]) -> dict[str, Any]:
    """The feature browser (``eval.browser``): the autointerp pages with each feature's steering
    effect, bridge matches and the SAE eval headline, from the stages that ran (``done``)."""
    from eval.browser import BrowserConfig, build_browser

    out = ctx.out
    steer = out / "steering" / "run"
    index = build_browser(BrowserConfig(
        out=str(where), autointerp=str(out / "autointerp"),
        steering=str(steer) if done.get("steering") else None,
        bridge=str(out / "bridge") if done.get("bridge") else None,
        sae_eval=str(out / "sae_eval") if done.get("sae_eval") else None))
    return {"index": str(index)}


__all__ = ["METHOD_SPLIT", "STEER_METHODS", "autointerp", "bridge", "method_options", "methods",
           "sae_eval", "steering", "browser"]
