"""``radinterp autointerp``: registered through the ``radinterp.commands`` entry point."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from radinterp.cli import add_command, comma_list

log = logging.getLogger(__name__)


def _names(text: str | None) -> list[str] | None:
    return None if text is None else comma_list(text.replace(" ", ""))


def autointerp_command(
    sae: Path = typer.Option(..., "--sae", help="Saved SAE folder (radinterp train output)."),
    acts: Path = typer.Option(..., "--acts", help="Activation store the SAE reads."),
    out: Path = typer.Option(..., "--out", help="Output folder (resumed when it holds rows)."),
    data: Path = typer.Option(None, "--data", help="Studies folder (default: the store's own)."),
    features: str = typer.Option(None, "--features", help="Latents, e.g. 0-99 or 3,7,10-12."),
    top: int = typer.Option(None, "--top", help="Explain the N most frequent latents (default 100)."),
    explainer: str = typer.Option("enrichment", "--explainer", help="Explainers, comma-separated: enrichment (offline), llm, llm-evidence, vision."),
    scorers: str = typer.Option(None, "--scorers", help="Scorers, comma-separated: embedding, planted, detection, fuzzing (default: embedding, plus planted on phantoms)."),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="Score a random SAE of the same shape and sparsity beside it."),
    site: str = typer.Option(None, "--site", help="Store site (default: the SAE's)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, draws and random baseline."),
    client: str = typer.Option("local", "--client", help="LLM client for LLM explainers / scorers: local (in-process) or openai (a server)."),
    base_url: str = typer.Option(None, "--base-url", help="OpenAI-compatible server URL (loopback unless --allow-external-endpoint)."),
    model: str = typer.Option(None, "--model", help="LLM model: server model name (openai) or local folder / .gguf (local; default SmolLM2)."),
    key_env: str = typer.Option("OPENAI_API_KEY", "--key-env", help="Environment variable holding the API key (never saved)."),
    concurrency: int = typer.Option(1, "--concurrency", help="Latents processed, and LLM requests sent, at once."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Tokens an LLM explainer may generate per explanation."),
    allow_external_endpoint: bool = typer.Option(False, "--allow-external-endpoint", help="Allow a non-loopback --base-url (sends patient data off this machine)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
    report_only: bool = typer.Option(False, "--report-only", help="Only rebuild OUT/index.html and the feature pages from OUT's files."),
) -> None:
    """Name and score every feature of an SAE from radiographs and report text."""
    from autointerp.clients import LLMRequestError
    if report_only:
        from autointerp.report import write_report

        typer.echo(str(write_report(out)))
        return
    from autointerp.config import AutointerpConfig
    from autointerp.pipeline import run_autointerp
    from radinterp.errors import InputError

    cfg = AutointerpConfig(
        sae=str(sae), acts=str(acts), out=str(out), data=None if data is None else str(data),
        features=features, top=top, explainers=_names(explainer) or [], scorers=_names(scorers),
        baseline=baseline, site=site, seed=seed, client=client, base_url=base_url, model=model,
        key_env=key_env, concurrency=concurrency, max_tokens=max_tokens,
        allow_external_endpoint=allow_external_endpoint, progress=progress)
    try:
        summary = run_autointerp(cfg)
    except LLMRequestError as err:  # the server, not the code: one line, and rerun resumes
        raise InputError(str(err).split(" (fix: ")[0], "check --base-url, --model and the "
                         "server, then rerun: finished rows and cached replies are kept") from err
    typer.echo(json.dumps(summary, indent=1))


def register(app: typer.Typer) -> None:
    add_command(app, "autointerp", autointerp_command)


__all__ = ["autointerp_command", "register"]
