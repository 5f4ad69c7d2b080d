"""``radinterp browse --autointerp DIR [--steering DIR] [--bridge DIR] [--eval DIR] --out DIR``."""

from __future__ import annotations

import typer


def browse_command(
    autointerp: str = typer.Option(..., "--autointerp", help="A radinterp autointerp output folder."),
    out: str = typer.Option(..., "--out", help="Output folder of the browser."),
    steering: str = typer.Option(None, "--steering", help="A radinterp steer output folder."),
    bridge: str = typer.Option(None, "--bridge", help="A radinterp bridge output folder."),
    sae_eval: str = typer.Option(None, "--eval", help="A radinterp eval output folder (metrics.json)."),
    n_generations: int = typer.Option(3, "--generations", help="Example reports per steered arm."),
) -> None:
    """A static feature browser (opens offline from disk): every explained feature with its
    explanation and scores, examples, steering effect and bridge matches."""
    from eval.browser import BrowserConfig, build_browser

    index = build_browser(BrowserConfig(out=out, autointerp=autointerp, steering=steering, bridge=bridge,
                                        sae_eval=sae_eval, n_generations=n_generations))
    typer.echo(f"wrote {index}")


def register(app: typer.Typer) -> None:
    from radinterp.cli import add_command

    add_command(app, "browse", browse_command)
