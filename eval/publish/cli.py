"""``radinterp publish``: registered through the ``radinterp.commands`` entry point."""

from __future__ import annotations

from pathlib import Path

import typer

from radinterp.cli import add_command, comma_list


def publish_command(
    sae: str = typer.Option(..., "--sae", help="SAE folder(s), comma-separated; folder names are the SAE ids."),
    repo_id: str = typer.Option(..., "--repo-id", help="Hub repo ORG/NAME."),
    dry_run: Path = typer.Option(None, "--dry-run", help="Write exactly what would be uploaded into DIR; upload nothing."),
    stage: Path = typer.Option(None, "--stage", help="Staging folder of a real upload (kept for resuming; default ./publish-ORG__NAME)."),
    layout: str = typer.Option("sae_lens", "--layout", help="sae_lens or dictionary_learning."),
    eval_dirs: str = typer.Option(None, "--eval", help="radinterp eval folder(s), one per SAE (default SAE/eval)."),
    autointerp: str = typer.Option(None, "--autointerp", help="autointerp folder(s) with explanations.jsonl (default SAE/autointerp)."),
    license: str = typer.Option("mit", "--license", help="Licence of the weights."),
    data_note: str = typer.Option(None, "--data-note", help="The training data and its licence, for the card."),
    labels: bool = typer.Option(True, "--labels/--no-labels", help="Publish autointerp explanations (they can quote report phrases: review them)."),
    public: bool = typer.Option(False, "--public", help="Create the repo public (default private)."),
    endpoint: str = typer.Option(None, "--endpoint", help="Hub endpoint (default huggingface.co)."),
) -> None:
    """Publish SAEs to the Hub (SAELens or dictionary_learning layout) with a model card."""
    from eval.publish.run import PublishConfig, publish

    extra = {"data_note": data_note} if data_note else {}
    cfg = PublishConfig(saes=comma_list(sae), repo_id=repo_id, layout=layout, evals=comma_list(eval_dirs),
                        autointerp=comma_list(autointerp), license=license, include_labels=labels, private=not public,
                        endpoint=endpoint, **extra)
    folder = dry_run or stage or Path(f"publish-{repo_id.replace('/', '__')}")
    plan = publish(cfg, folder, dry_run=dry_run is not None)
    verb = "would upload" if dry_run is not None else "uploaded"
    for call in plan:
        typer.echo(f"{verb}: {call.method} {call.kwargs.get('path_in_repo', call.kwargs['repo_id'])}")
    typer.echo(f"-> {folder}")


def register(app: typer.Typer) -> None:
    add_command(app, "publish", publish_command)
