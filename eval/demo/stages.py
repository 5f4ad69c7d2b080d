"""The demo's first stages: studies -> capture (and healthy twins) -> SAE -> report quality ->
planted-finding recovery. Each function takes the run's :class:`Ctx` and its stage folder and
returns the stage's headline result (JSON)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from radinterp.config import write_json_atomic
from eval.demo.config import DemoConfig

log = logging.getLogger(__name__)


@dataclass
class Ctx:
    """Paths and loaders shared by the stages of one run."""

    cfg: DemoConfig
    out: Path

    @property
    def data(self) -> str:
        """The studies: the phantom folder or ``--data``."""
        return str(self.out / "phantoms") if self.cfg.phantom else str(self.cfg.data)

    @property
    def acts(self) -> Path:
        return self.out / "acts"

    @property
    def sae_dir(self) -> Path:
        return self.out / "sae"

    @property
    def max_studies(self) -> int | None:
        """Studies read from ``--data`` (phantoms: all of the generated ones)."""
        return None if self.cfg.phantom else self.cfg.n_studies

    @property
    def model_options(self) -> dict[str, Any]:
        return {} if self.cfg.image_size is None else {"image_size": self.cfg.image_size}

    @cached_property
    def adapter(self):
        """The model, loaded once for the stages that generate (steering)."""
        from radinterp.models import load_adapter

        return load_adapter(self.cfg.model, **self.model_options)

    def store(self):
        from radinterp.store import open_store

        return open_store(self.acts)

    def sae(self):
        from radinterp.sae import load_sae

        return load_sae(self.sae_dir)

    def kinds(self) -> list[str] | None:
        return ["image"] if self.cfg.sae_tokens == "image" else None


def phantoms(ctx: Ctx, where: Path) -> dict[str, Any]:
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms

    cfg = ctx.cfg
    generate_phantoms(PhantomConfig(n=cfg.n_studies, seed=cfg.seed, size=224), where,
                      progress=cfg.progress)
    return {"n_studies": cfg.n_studies, "seed": cfg.seed}


def capture(ctx: Ctx, where: Path) -> dict[str, Any]:
    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import run_capture

    cfg = ctx.cfg
    run_capture(CaptureConfig(model=cfg.model, data=ctx.data, out=str(where), sites=[cfg.site],
                              token_filter=cfg.token_filter, image_size=cfg.image_size,
                              max_studies=ctx.max_studies, progress=cfg.progress))
    store = ctx.store()
    return {"n_studies": len(store.studies()), "n_tokens": store.num_tokens(cfg.site),
            "d_model": store.d_model}


def twins(ctx: Ctx, where: Path) -> dict[str, Any]:
    """The phantoms' healthy twins (same patient and prompt, no findings; image positions)."""
    from eval.recovery.counterfactual import write_twin_jsonl
    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import run_capture
    from radinterp.data.phantoms import load_phantom_studies

    cfg = ctx.cfg
    jsonl = write_twin_jsonl(load_phantom_studies(ctx.data), where / "twins.jsonl")
    run_capture(CaptureConfig(model=cfg.model, data=str(jsonl), out=str(where / "acts"),
                              sites=[cfg.site], token_filter="image", with_report=False,
                              image_size=cfg.image_size, progress=cfg.progress))
    return {"store": str(where / "acts")}


def sae(ctx: Ctx, where: Path) -> dict[str, Any]:
    """Matryoshka BatchTopK SAE on the captured tokens."""
    from sae_training.config import TrainConfig
    from sae_training.data import open_activation_source
    from sae_training.trainer import Trainer

    cfg = ctx.cfg
    store = ctx.store()
    n_tokens = store.num_tokens(cfg.site, ctx.kinds())
    d_sae = cfg.expansion * store.d_model
    widths = [d_sae // 8, d_sae // 4, d_sae // 2, d_sae]
    tcfg = TrainConfig(d_sae=d_sae, k=cfg.k, widths=widths, total_tokens=cfg.sae_passes * n_tokens,
                       checkpoint_every=200, progress=cfg.progress)
    source = open_activation_source(ctx.acts, site=cfg.site, token_kinds=ctx.kinds())
    Trainer(tcfg, source, where).fit()
    return {"n_tokens": n_tokens, "d_sae": d_sae, "k": cfg.k, "sae_tokens": cfg.sae_tokens}


def report_quality(ctx: Ctx, where: Path) -> dict[str, Any]:
    """Generated reports scored against the planted labels, beside a prevalence reporter (one
    that names each finding at random at its true rate: expected F1 = the prevalence)."""
    from eval.report_quality import RESULT_FILE, ReportQualityConfig, evaluate_reports

    cfg = ctx.cfg
    if (where / RESULT_FILE).exists():
        res = json.loads((where / RESULT_FILE).read_text())
    else:
        res = evaluate_reports(ReportQualityConfig(model=cfg.model, data=ctx.data, out=str(where),
                                                   limit=cfg.eval_studies, progress=cfg.progress))
    per = [v for v in res["per_finding"].values() if v["f1"] is not None]
    n = cfg.eval_studies
    prevalence = sum(v["n_true"] / n for v in per) / len(per) if per and n else None
    return {"macro_f1": res.get("macro_f1"), "prevalence_f1": prevalence,
            "n_studies": n, "n_findings": len(per)}


def recovery(ctx: Ctx, where: Path) -> dict[str, Any]:
    """Planted-finding recovery against a random SAE and a probe (``eval.recovery``)."""
    from eval.recovery.metrics import load_scope
    from eval.recovery.recovery import RecoveryConfig, evaluate_recovery, patch_grid, scopes_from_store
    from radinterp.data.phantoms import load_phantom_studies
    from radinterp.store import open_store

    cfg = ctx.cfg
    store = ctx.store()
    rcfg = RecoveryConfig(min_positives=2)
    res = evaluate_recovery(scopes_from_store(store, cfg.site, rcfg), ctx.sae(),
                            load_phantom_studies(ctx.data),
                            twins=load_scope(open_store(ctx.out / "twins" / "acts"), cfg.site, "image"),
                            grid=patch_grid(store), cfg=rcfg)
    write_json_atomic(where / "recovery.json", res)
    return res


__all__ = ["Ctx", "capture", "phantoms", "recovery", "report_quality", "sae", "twins"]
