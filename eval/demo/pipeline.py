"""``run_demo``: every stage in order, each in its own folder under ``cfg.out``, complete ones
reused, stages needing planted truth skipped on ``--data`` with the reason."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from radinterp.config import write_json_atomic
from radinterp.errors import InputError
from eval.demo import analysis as A
from eval.demo import stages as S
from eval.demo.config import STAGE_NAMES, DemoConfig
from eval.demo.runner import Runner

log = logging.getLogger(__name__)

NO_TRUTH = "needs planted truth (phantoms); --data {data} has none"


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Run (or resume) the demo; returns the summary (also ``OUT/summary.json``)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_same_run(cfg, out / "cfg.json")
    cfg.save(out / "cfg.json")
    ctx = S.Ctx(cfg, out)
    r = Runner(cfg, total=len(STAGE_NAMES))
    no_truth = NO_TRUTH.format(data=cfg.data)
    try:
        if cfg.phantom:
            r.run("phantoms", "phantoms", lambda w: S.phantoms(ctx, w))
        else:
            r.skip("phantoms", f"studies from --data {cfg.data}")
        r.run("capture", "acts", lambda w: S.capture(ctx, w))
        if cfg.phantom:
            r.run("twins", "twins", lambda w: S.twins(ctx, w))
        else:
            r.skip("twins", no_truth)
        r.run("sae", "sae", lambda w: S.sae(ctx, w))
        if not cfg.phantom:
            r.skip("report_quality", "scores reports against phantom labels; --data is not phantoms")
        elif cfg.eval_studies:
            r.run("report_quality", "report_quality", lambda w: S.report_quality(ctx, w))
        else:
            r.skip("report_quality", "--eval-studies 0")
        if cfg.phantom:
            r.run("recovery", "recovery", lambda w: S.recovery(ctx, w))
        else:
            r.skip("recovery", no_truth)
        r.run("sae_eval", "sae_eval", lambda w: A.sae_eval(ctx, w))
        r.run("autointerp", "autointerp", lambda w: A.autointerp(ctx, w))
        if cfg.llm_features:
            r.run("autointerp_llm", "autointerp_llm", lambda w: A.autointerp(ctx, w, llm=True))
        else:
            r.skip("autointerp_llm", "--llm-features 0 (the quick preset's; the full preset explains 2 "
                                     "latents with the local LLM, ~95 s)")
        if not cfg.phantom:
            r.skip("steering", "steering by finding needs held-out studies labelled in the "
                               "model's vocabulary (phantoms)")
        elif cfg.steer_n:
            r.run("steering", "steering", lambda w: A.steering(ctx, w))
        else:
            r.skip("steering", "--steer-n 0")
        if cfg.methods:
            got = r.run("methods", "methods", lambda w: A.methods(ctx, w))
            dirs = [v["root"] for v in got.values()]
        else:
            r.skip("methods", "no --methods")
            dirs = []
        r.run("bridge", "bridge", lambda w: A.bridge(ctx, w, dirs))
        done = {n: r.result(n) is not None for n in ("steering", "bridge", "sae_eval")}
        r.run("browser", "browser", lambda w: A.browser(ctx, w, done))
    finally:
        r.close()
    summary = summarize(cfg, r)
    write_json_atomic(out / "summary.json", summary)
    return summary


def check_same_run(cfg: DemoConfig, saved: Path) -> None:
    """Raise when ``saved`` holds another run's settings (its stages would be reused)."""
    if not saved.is_file():
        return
    old = {k: v for k, v in json.loads(saved.read_text()).items() if k != "progress"}
    new = {k: v for k, v in cfg.to_dict().items() if k != "progress"}
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if diff:
        raise InputError(f"{saved.parent} holds a demo run with other settings ({', '.join(diff)})",
                         "pass another --out, or delete that folder to start over")


def summarize(cfg: DemoConfig, r: Runner) -> dict[str, Any]:
    """The run's summary: settings, every stage's result, seconds and skip reasons."""
    cap, sae = r.result("capture") or {}, r.result("sae") or {}
    quality = r.result("report_quality")
    return {
        "model": cfg.model, "site": cfg.site, "data": cfg.data or "phantoms",
        "n_studies": cap.get("n_studies"), "n_tokens": sae.get("n_tokens"),
        "sae_tokens": cfg.sae_tokens, "d_sae": sae.get("d_sae"), "k": cfg.k,
        "report_macro_f1": None if quality is None else quality.get("macro_f1"),
        "recovery": r.result("recovery"),
        "stages": {n: {"status": o.status, "seconds": o.seconds, "cpu_seconds": o.cpu_seconds,
                       "reason": o.reason,
                       "result": o.result} for n, o in r.outcomes.items()},
        "browser": (r.result("browser") or {}).get("index"),
    }


__all__ = ["run_demo", "summarize"]
