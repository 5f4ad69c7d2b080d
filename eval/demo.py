"""``radinterp demo``: the pipeline end to end on the embedded defaults.

phantoms (held-out seed) -> capture (demo model, one site; and the phantoms' healthy twins)
-> Matryoshka BatchTopK SAE -> report quality of the model -> planted-finding recovery: for
each finding, the latent chosen on half the studies and scored on the other half, on image
positions and on text positions apart, beside a random SAE of the same shape and sparsity and
a linear probe (``eval.recovery``). Every stage writes its own folder under ``--out`` and is
skipped when already complete, so a rerun resumes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import typer

from radinterp.cli import add_command
from radinterp.config import BaseConfig, write_json_atomic

log = logging.getLogger(__name__)


@dataclass
class DemoConfig(BaseConfig):
    """The demo run."""

    out: str = "runs/demo"
    """Folder holding one sub-folder per stage."""
    model: str = "demo"
    """Adapter to interpret (default: the demo radiology model trained on phantoms)."""
    n_studies: int = 200
    """Phantom studies to capture (half choose each finding's latent, half score it; 48 left
    most findings with a handful of held-out positives)."""
    seed: int = 20261127
    """Phantom seed (not one the demo model was trained on)."""
    site: str = "lm.blocks.15.resid_post"
    """Residual site (layer 15, as in the MAIRA-2 SAE study)."""
    token_filter: str = "all"
    """Positions to capture (TOKEN_FILTERS name); recovery scores the image and text ones."""
    sae_tokens: str = "all"
    """Positions the SAE trains on: ``all`` captured ones or ``image`` (patch tokens only)."""
    expansion: int = 4
    """d_sae = expansion * d_model."""
    k: int = 16
    """Average active latents per token."""
    sae_passes: int = 20
    """Training passes over the captured tokens."""
    eval_studies: int = 16
    """Studies whose generated reports are scored (0 skips the stage)."""
    image_size: int | None = None
    """Override the adapter's image side (tests use 112 with ``tiny``); None keeps its own."""
    progress: bool = True
    """Progress bars."""

    def __post_init__(self) -> None:
        if self.n_studies < 4:
            raise ValueError(f"n_studies must be >= 4 to train anything, got {self.n_studies}")
        if self.expansion < 1 or self.k < 1 or self.sae_passes < 1:
            raise ValueError("expansion, k and sae_passes must be positive")
        if not 0 <= self.eval_studies <= self.n_studies:
            raise ValueError(f"eval_studies must be in 0..n_studies ({self.n_studies})")
        if self.sae_tokens not in ("image", "all"):
            raise ValueError(f"sae_tokens must be 'image' or 'all', got {self.sae_tokens!r}")


def run_demo(cfg: DemoConfig) -> dict:
    from eval.recovery.counterfactual import write_twin_jsonl
    from eval.recovery.metrics import load_scope
    from eval.recovery.recovery import RecoveryConfig, evaluate_recovery, patch_grid, scopes_from_store
    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import run_capture
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms, load_phantom_studies
    from radinterp.store import open_store
    from sae_training.config import TrainConfig
    from sae_training.data import open_activation_source
    from sae_training.trainer import Trainer

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "cfg.json")

    log.info("stage 1/5: %d phantom studies (seed %d)", cfg.n_studies, cfg.seed)
    phantoms = generate_phantoms(PhantomConfig(n=cfg.n_studies, seed=cfg.seed, size=224), out / "phantoms",
                                 progress=cfg.progress)
    studies = load_phantom_studies(phantoms)

    log.info("stage 2/5: capture %s with model %s", cfg.site, cfg.model)
    run_capture(CaptureConfig(model=cfg.model, data=str(phantoms), out=str(out / "acts"),
                              sites=[cfg.site], token_filter=cfg.token_filter, image_size=cfg.image_size,
                              progress=cfg.progress))
    # the healthy twins: same patient and prompt, no findings (image positions only)
    twins_jsonl = write_twin_jsonl(studies, out / "twins.jsonl")
    run_capture(CaptureConfig(model=cfg.model, data=str(twins_jsonl), out=str(out / "twins"),
                              sites=[cfg.site], token_filter="image", with_report=False,
                              image_size=cfg.image_size, progress=cfg.progress))
    store = open_store(out / "acts")
    kinds = ["image"] if cfg.sae_tokens == "image" else None
    n_tokens = store.num_tokens(cfg.site, kinds)

    log.info("stage 3/5: Matryoshka BatchTopK SAE on %d tokens", n_tokens)
    d_sae = cfg.expansion * store.d_model
    widths = [d_sae // 8, d_sae // 4, d_sae // 2, d_sae]
    tcfg = TrainConfig(d_sae=d_sae, k=cfg.k, widths=widths, total_tokens=cfg.sae_passes * n_tokens,
                       checkpoint_every=200, progress=cfg.progress)
    source = open_activation_source(out / "acts", site=cfg.site, token_kinds=kinds)
    sae = Trainer(tcfg, source, out / "sae").fit()

    quality = None
    if cfg.eval_studies:
        from eval.report_quality import RESULT_FILE, ReportQualityConfig, evaluate_reports

        log.info("stage 4/5: report quality on %d studies", cfg.eval_studies)
        qdir = out / "report_quality"
        if (qdir / RESULT_FILE).exists():
            quality = json.loads((qdir / RESULT_FILE).read_text())
        else:
            quality = evaluate_reports(ReportQualityConfig(
                model=cfg.model, data=str(phantoms), out=str(qdir), limit=cfg.eval_studies,
                progress=cfg.progress))

    log.info("stage 5/5: planted-finding recovery against a random SAE and a probe")
    rcfg = RecoveryConfig(min_positives=2)
    res = evaluate_recovery(scopes_from_store(store, cfg.site, rcfg), sae, studies,
                            twins=load_scope(open_store(out / "twins"), cfg.site, "image"),
                            grid=patch_grid(store), cfg=rcfg)
    write_json_atomic(out / "recovery.json", res)
    summary = {
        "model": cfg.model, "site": cfg.site, "n_studies": len(studies), "n_tokens": n_tokens,
        "sae_tokens": cfg.sae_tokens, "d_sae": d_sae, "k": cfg.k,
        "report_macro_f1": None if quality is None else quality.get("macro_f1"),
        "recovery": res,
    }
    write_json_atomic(out / "summary.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    from eval.recovery.plot import format_findings, format_summary_lines

    lines = [f"model {summary['model']}  site {summary['site']}  {summary['n_studies']} studies, "
             f"SAE on {summary['n_tokens']} {summary['sae_tokens']} tokens, d_sae={summary['d_sae']} "
             f"k={summary['k']}"]
    if summary["report_macro_f1"] is not None:
        lines.append(f"generated-report macro-F1 vs planted labels: {summary['report_macro_f1']:.3f}")
    rec = summary["recovery"]
    lines += ["planted-finding recovery: latent chosen on half the studies, scored on the other half;",
              "trained SAE / random SAE of the same shape and L0; the probe is a linear read-out of",
              "the layer (the most it holds). Text positions include the teacher-forced report, which",
              "names the findings: reading, not seeing."]
    for scope in rec["scopes"]:
        lines += format_findings(rec, scope)
    lines += format_summary_lines(rec)
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    def demo(
        out: Path = typer.Option(Path("runs/demo"), help="Output folder (one sub-folder per stage)."),
        model: str = typer.Option("demo", help="Adapter to interpret."),
        n_studies: int = typer.Option(200, help="Phantom studies to capture."),
        site: str = typer.Option("lm.blocks.15.resid_post", help="Canonical site to capture."),
        eval_studies: int = typer.Option(16, help="Studies to generate reports for (0 = skip)."),
        sae_passes: int = typer.Option(20, help="SAE training passes over the captured tokens."),
        sae_tokens: str = typer.Option("all", help="Positions the SAE trains on: all or image."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    ) -> None:
        """Run the pipeline end to end: phantoms, capture, SAE, report quality, recovery."""
        cfg = DemoConfig(out=str(out), model=model, n_studies=n_studies, site=site,
                         eval_studies=eval_studies, sae_passes=sae_passes, sae_tokens=sae_tokens,
                         progress=progress)
        summary = run_demo(cfg)
        typer.echo(format_summary(summary))
        typer.echo(f"wrote {Path(out) / 'summary.json'}")

    add_command(app, "demo", demo)
