"""``radinterp steer``: registered through the ``radinterp.commands`` entry point."""

from __future__ import annotations

from pathlib import Path

import typer

from radinterp.cli import add_command, comma_list
from radinterp.errors import InputError


def _list(value: str | None, cast=str) -> list:
    try:
        return comma_list(value, cast)
    except ValueError:
        raise InputError(f"cannot read {value!r} as a comma-separated list of {cast.__name__}",
                         "pass e.g. --coef 0.5,1,2 or --feature 12,40") from None


def steer_command(
    data: Path = typer.Option(..., "--data", help="Held-out studies with reference labels (e.g. a phantom folder)."),
    out: Path = typer.Option(..., "--out", help="Output folder (steering.json, generations.jsonl, steering.html)."),
    model: str = typer.Option("demo", "--model", help="Adapter name or model folder."),
    sae: str = typer.Option(None, "--sae", help="SAE folder (methods add, clamp, ablate); with several --layers one per layer, comma-separated."),
    acts: Path = typer.Option(None, "--acts", help="Activation store at the site (scale, diffmean, feature choice)."),
    feature: str = typer.Option(None, "--feature", help="SAE latent(s), comma-separated."),
    finding: list[str] = typer.Option([], "--finding", help="Label to steer toward; repeat for several."),
    method: str = typer.Option("add", "--method", help="Comma-separated: add, clamp, ablate, diffmean, diffmean_matched, prompt."),
    coef: str = typer.Option("0.5,1,2", "--coef", help="Coefficient sweep, comma-separated."),
    where: str = typer.Option("image", "--where", help="Positions edited: all, image, prompt, generated."),
    layers: str = typer.Option(None, "--layers", help="Layer(s) steered (default: the SAE's), e.g. 15 or 10,15 (the same method at each)."),
    selection: str = typer.Option("auroc,effect", "--selection", help="How --finding picks a feature: auroc, effect, steered."),
    n: int = typer.Option(24, "--n", help="Held-out studies (half select the coefficient, half test it)."),
    n_with: int = typer.Option(0, "--n-with", help="Extra held-out studies with each finding (for ablate)."),
    n_random: int = typer.Option(2, "--n-random", help="Random directions of equal norm per coefficient."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Generation length."),
    batch_size: int = typer.Option(16, "--batch-size", help="Rows per generate call."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the random directions."),
    threads: int = typer.Option(None, "--threads", help="torch CPU threads."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
) -> None:
    """Steer generated reports with SAE features (and diffmean / prompt baselines) and measure it."""
    from steering.evaluate import SteerConfig, run_steering
    from steering.report import markdown_table

    if threads:
        import torch

        torch.set_num_threads(threads)
    from steering.sites import layer_sites

    sites = layer_sites(_list(layers, int)) if layers else []
    site = sites[0] if len(sites) == 1 else None
    sites = sites if len(sites) > 1 else []
    cfg = SteerConfig(data=str(data), out=str(out), model=model, sae=sae or None,
                      acts=str(acts) if acts else None, site=site, sites=sites, features=_list(feature, int),
                      findings=list(finding), methods=_list(method), coefs=_list(coef, float), where=where,
                      selection=_list(selection), n=n, n_with=n_with, n_random=n_random, max_new_tokens=max_new_tokens,
                      batch_size=batch_size, seed=seed, progress=progress)
    result = run_steering(cfg)
    typer.echo(markdown_table(result, "test"))
    typer.echo(f"wrote {Path(out) / 'steering.json'}")


def register(app: typer.Typer) -> None:
    add_command(app, "steer", steer_command)
