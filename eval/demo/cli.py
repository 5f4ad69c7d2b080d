"""``radinterp demo [--out DIR] [--quick] [--data DIR]``."""

from __future__ import annotations

from pathlib import Path

import typer

from radinterp.cli import add_command


def register(app: typer.Typer) -> None:
    def demo(
        out: Path = typer.Option(Path("runs/demo"), help="Output folder (one sub-folder per stage)."),
        quick: bool = typer.Option(False, "--quick", help="Small sizes: under 3 minutes."),
        data: Path = typer.Option(None, help="Folder of real radiographs with metadata.jsonl "
                                  "(e.g. ../shared/data/real-cxr) instead of phantoms."),
        model: str = typer.Option("demo", help="Adapter to interpret."),
        n_studies: int = typer.Option(None, help="Studies to capture (default: the preset's)."),
        site: str = typer.Option("lm.blocks.15.resid_post", help="Canonical site to capture."),
        eval_studies: int = typer.Option(None, help="Studies to generate reports for (0 = skip)."),
        sae_passes: int = typer.Option(None, help="SAE training passes over the captured tokens."),
        sae_tokens: str = typer.Option("all", help="Positions the SAE trains on: all or image."),
        llm_features: int = typer.Option(None, help="Latents the local LLM explainer also explains "
                                         "(default: the preset's, full 2, quick 0; 0 = skip)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    ) -> None:
        """Run the whole pipeline: phantoms, capture, SAE, eval, autointerp, steering, reference
        methods, bridge, feature browser; print the headline numbers and the browser's path."""
        from eval.demo import DemoConfig, format_summary, run_demo

        given = {"n_studies": n_studies, "eval_studies": eval_studies, "sae_passes": sae_passes,
                 "llm_features": llm_features}
        cfg = DemoConfig.preset(
            "quick" if quick else "full", out=str(out), data=None if data is None else str(data),
            model=model, site=site, sae_tokens=sae_tokens,
            progress=progress, **{k: v for k, v in given.items() if v is not None})
        summary = run_demo(cfg)
        typer.echo(format_summary(summary))
        typer.echo(f"wrote {Path(out) / 'summary.json'}")

    add_command(app, "demo", demo)


__all__ = ["register"]
