"""``radinterp eval``: registered through the ``radinterp.commands`` entry point."""

from __future__ import annotations

from pathlib import Path

import typer

from radinterp.cli import add_command


def eval_command(
    sae: Path = typer.Option(..., "--sae", help="SAE folder (sae-lens or dictionary_learning layout)."),
    acts: Path = typer.Option(..., "--acts", help="Activation store to evaluate on."),
    out: Path = typer.Option(..., "--out", help="Output folder (metrics.json, metrics.html)."),
    model: str = typer.Option(None, "--model", help="Model for the fidelity splice (default: the store's)."),
    data: Path = typer.Option(None, "--data", help="Studies the store was captured from (default: the manifest's)."),
    site: str = typer.Option(None, "--site", help="Store site (default: the SAE's)."),
    rows: str = typer.Option("auto", "--rows", help="held_out, all or auto (held_out on the SAE's training store)."),
    max_tokens: int = typer.Option(None, "--max-tokens", help="Evaluate at most this many rows."),
    fidelity_studies: int = typer.Option(16, "--fidelity-studies", help="Studies to splice on (0: skip)."),
    fidelity_method: str = typer.Option("auto", "--fidelity-method", help="auto, suffix or edit."),
    random_fidelity: bool = typer.Option(True, "--random-fidelity/--no-random-fidelity", help="Also splice the random SAE."),
    probe_studies: int = typer.Option(None, "--probe-studies", help="Studies for k-sparse probing (default all; 0: skip)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random SAE and the probing split."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Re-run even if OUT/metrics.json exists."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Measure an SAE: reconstruction, sparsity, fidelity (CE / KL scores) and k-sparse probing."""
    from eval.sae_eval.config import EvalConfig
    from eval.sae_eval.run import run_eval
    from eval.sae_eval.summary import summary_lines

    cfg = EvalConfig(sae=str(sae), acts=str(acts), out=str(out), site=site, rows=rows,
                     max_tokens=max_tokens, model=model, data=None if data is None else str(data),
                     fidelity_studies=fidelity_studies, fidelity_method=fidelity_method,
                     random_fidelity=random_fidelity, probe_studies=probe_studies, seed=seed,
                     device=device, progress=progress)
    metrics = run_eval(cfg, overwrite=overwrite)
    for line in summary_lines(metrics):
        typer.echo(line)
    typer.echo(f"-> {out / 'metrics.json'}, {out / 'metrics.html'}")


def register(app: typer.Typer) -> None:
    add_command(app, "eval", eval_command)
