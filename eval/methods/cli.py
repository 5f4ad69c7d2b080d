"""``radinterp method NAME --data DIR --out OUT [--model M] [--site S] [--opt key=value ...]``."""

from __future__ import annotations

import json
import logging

import typer

from radinterp.errors import InputError

log = logging.getLogger(__name__)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} {item!r} is not key=value", f"pass {flag} key=value")
        out[key.strip()] = value.strip()
    return out


def method_command(
    name: str = typer.Argument(..., help="Method: csr, insight or radiomics."),
    data: str = typer.Option(..., "--data", help="Phantom folder, image folder or .jsonl of studies."),
    out: str = typer.Option(..., "--out", help="Output folder."),
    model: str = typer.Option("demo", "--model", help="Model for patch features (csr, insight)."),
    site: str = typer.Option(None, "--site", help="Feature site; default: the last vision block."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split and the fits."),
    max_studies: int = typer.Option(None, "--max-studies", help="Use the first N studies only."),
    split: str = typer.Option("0.6,0.2,0.2", "--split", help="Train,val,test fractions."),
    opt: list[str] = typer.Option([], "--opt", help="Method option key=value (repeatable)."),
    model_opt: list[str] = typer.Option([], "--model-opt", help="Adapter load option key=value."),
    device: str = typer.Option("cpu", "--device", help="Torch device."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace another run in OUT."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Fit a reference method (CSR, INSIGHT, radiomic fingerprint) and write its maps and metrics."""
    from eval.methods.base import MethodRunConfig, load_methods, run_method

    load_methods().get(name)  # unknown name: one line listing the valid ones
    try:
        fractions = tuple(float(v) for v in split.split(","))
    except ValueError:
        raise InputError(f"--split {split!r} is not three numbers", "pass e.g. --split 0.6,0.2,0.2") from None
    model_options = {k: _number(v) for k, v in _pairs(model_opt, "--model-opt").items()}
    cfg = MethodRunConfig(method=name, data=data, out=out, model=model, model_options=model_options,
                          site=site, seed=seed, split=fractions, max_studies=max_studies,  # type: ignore[arg-type]
                          device=device, progress=not no_progress, options=_pairs(opt, "--opt"))
    metrics = run_method(cfg, overwrite=overwrite)
    typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


def _number(value: str):
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def register(app: typer.Typer) -> None:
    from radinterp.cli import add_command

    add_command(app, "method", method_command)
