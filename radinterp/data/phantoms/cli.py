"""``radinterp phantoms``: generate a phantom chest X-ray dataset."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from radinterp.cli import add_command

log = logging.getLogger(__name__)


def phantoms(
    out: Path = typer.Option(..., "--out", help="Output folder (created if missing)."),
    n: int = typer.Option(100, "--n", help="Number of studies."),
    seed: int = typer.Option(0, "--seed", help="Master seed."),
    size: int = typer.Option(224, "--size", help="Image side in pixels (64..1024)."),
    findings: str = typer.Option(
        "", "--findings",
        help="Comma-separated findings to plant, optionally NAME=RATE "
        "(e.g. 'cardiomegaly,pleural_effusion=0.3'); default: all with default rates.",
    ),
    normal_fraction: float = typer.Option(0.3, help="Share of studies with no finding."),
    prior_fraction: float = typer.Option(0.3, help="Share of studies with a prior study."),
    no_masks: bool = typer.Option(False, "--no-masks", help="Do not write mask PNGs."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace a different dataset in --out."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Generate phantom chest radiographs with planted findings, masks, reports and labels."""
    from radinterp.data.phantoms.config import PhantomConfig, parse_findings
    from radinterp.data.phantoms.writer import generate_phantoms

    kw = {"findings": parse_findings(findings)} if findings.strip() else {}
    cfg = PhantomConfig(n=n, seed=seed, size=size, normal_fraction=normal_fraction,
                        prior_fraction=prior_fraction, save_masks=not no_masks, **kw)
    path = generate_phantoms(cfg, out, overwrite=overwrite, progress=progress)
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    add_command(app, "phantoms", phantoms)
