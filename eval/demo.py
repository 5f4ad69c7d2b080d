"""``radinterp demo``: the pipeline end to end on the embedded defaults.

phantoms (held-out seed) -> capture (demo model, one site) -> Matryoshka BatchTopK SAE ->
report quality of the model -> which latents find which planted findings (scored on image
positions, and on all positions). Every stage writes
its own folder under ``--out`` and is skipped when already complete, so a rerun resumes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
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
    n_studies: int = 48
    """Phantom studies to capture."""
    seed: int = 20261127
    """Phantom seed (not one the demo model was trained on)."""
    site: str = "lm.blocks.15.resid_post"
    """Residual site (layer 15, as in the MAIRA-2 SAE study)."""
    token_filter: str = "all"
    """Positions to capture (TOKEN_FILTERS name)."""
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


def run_demo(cfg: DemoConfig) -> dict:
    from eval.feature_finding import best_latents, study_latent_max
    from radinterp.labels import positive_labels
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
    store = open_store(out / "acts")
    n_tokens = store.num_tokens(cfg.site)

    log.info("stage 3/5: Matryoshka BatchTopK SAE on %d tokens", n_tokens)
    d_sae = cfg.expansion * store.d_model
    widths = [d_sae // 8, d_sae // 4, d_sae // 2, d_sae]
    tcfg = TrainConfig(d_sae=d_sae, k=cfg.k, widths=widths, total_tokens=cfg.sae_passes * n_tokens,
                       checkpoint_every=200, progress=cfg.progress)
    sae = Trainer(tcfg, open_activation_source(out / "acts", site=cfg.site), out / "sae").fit()

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

    log.info("stage 5/5: latents that find planted findings")
    labels = {s.study_id: s.labels for s in studies}
    findings = sorted({k for s in studies for k in positive_labels(s.labels)})
    found = {}
    # image positions only: what the model encodes from pixels; all positions also sees the
    # teacher-forced reference report, whose words name the findings
    for scope, kinds in (("image", ["image"]), ("all", None)):
        ids, scores = study_latent_max(store, cfg.site, sae, token_kinds=kinds)
        found[scope] = [asdict(f) for f in best_latents(ids, scores, labels, findings)] if ids else []
    summary = {
        "model": cfg.model, "site": cfg.site, "n_studies": len(studies), "n_tokens": n_tokens,
        "d_sae": d_sae, "k": cfg.k,
        "report_macro_f1": None if quality is None else quality.get("macro_f1"),
        "finding_latents": found["image"],
        "finding_latents_all_positions": found["all"],
    }
    write_json_atomic(out / "summary.json", summary)
    return summary


def format_summary(summary: dict) -> str:
    lines = [f"model {summary['model']}  site {summary['site']}  {summary['n_studies']} studies, "
             f"{summary['n_tokens']} tokens, SAE d_sae={summary['d_sae']} k={summary['k']}"]
    if summary["report_macro_f1"] is not None:
        lines.append(f"generated-report macro-F1 vs planted labels: {summary['report_macro_f1']:.3f}")
    lines.append("best latent per finding, scored on image positions (and on all positions, which")
    lines.append("include the teacher-forced report text)")
    lines.append("finding                      image: latent  AUROC   all: latent  AUROC   positives")
    every = {f["finding"]: f for f in summary["finding_latents_all_positions"]}
    for f in summary["finding_latents"]:
        a = every.get(f["finding"], {"latent": -1, "auroc": float("nan")})
        lines.append(f"{f['finding']:<28} {f['latent']:>13}  {f['auroc']:.3f}   {a['latent']:>11}  "
                     f"{a['auroc']:.3f}   {f['n_pos']:>9}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    def demo(
        out: Path = typer.Option(Path("runs/demo"), help="Output folder (one sub-folder per stage)."),
        model: str = typer.Option("demo", help="Adapter to interpret."),
        n_studies: int = typer.Option(48, help="Phantom studies to capture."),
        site: str = typer.Option("lm.blocks.15.resid_post", help="Canonical site to capture."),
        eval_studies: int = typer.Option(16, help="Studies to generate reports for (0 = skip)."),
        sae_passes: int = typer.Option(20, help="SAE training passes over the captured tokens."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    ) -> None:
        """Run the pipeline end to end: phantoms, capture, SAE, report quality, finding latents."""
        cfg = DemoConfig(out=str(out), model=model, n_studies=n_studies, site=site,
                         eval_studies=eval_studies, sae_passes=sae_passes, progress=progress)
        summary = run_demo(cfg)
        typer.echo(format_summary(summary))
        typer.echo(f"wrote {Path(out) / 'summary.json'}")

    add_command(app, "demo", demo)
