"""``radinterp capture``: registered through the ``radinterp.commands`` entry point."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from radinterp.cli import add_command

log = logging.getLogger(__name__)


def capture_command(
    model: str = typer.Option(..., "--model", help="Adapter name (tiny, demo, maira2) or model folder / Hub id."),
    data: Path = typer.Option(..., "--data", help="Phantom folder, image folder with metadata.jsonl, or .jsonl file."),
    site: list[str] = typer.Option(..., "--site", help="Canonical site; repeat for several (one forward for all)."),
    out: Path = typer.Option(..., "--out", help="Store folder (resumed when it exists with the same settings)."),
    data_kind: str = typer.Option(None, "--data-kind", help="Data source kind; default auto-detects."),
    batch_size: int = typer.Option(4, "--batch-size", help="Studies per forward."),
    dtype: str = typer.Option("bfloat16", "--dtype", help="Stored dtype: bfloat16, float16, float32."),
    model_dtype: str = typer.Option(None, "--model-dtype", help="Model dtype; default bf16 on GPU, fp32 on CPU."),
    max_studies: int = typer.Option(None, "--max-studies", help="Only the first N studies."),
    token_filter: str = typer.Option("all", "--token-filter", help="all, image, text, report, maira2_sae."),
    with_report: bool = typer.Option(True, "--with-report/--no-report", help="Teacher-force the reference report."),
    generate: bool = typer.Option(False, "--generate", help="Store the model's own report (GENERATED rows); implies --no-report."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Most generated tokens per study with --generate."),
    shard_mb: float = typer.Option(256.0, "--shard-mb", help="Shard size in MiB."),
    device: str = typer.Option("auto", "--device", help="Torch device (auto = cuda:LOCAL_RANK or cpu)."),
    image_size: int = typer.Option(None, "--image-size", help="Override the adapter's image side."),
    seed: int = typer.Option(0, "--seed", help="Seed for random-weight adapters (tiny)."),
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow checkpoint-shipped model code."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete an existing store at --out first."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Run a model over studies and write activations (one row per kept position) to a store.

    Under torchrun / accelerate launch each rank captures a disjoint slice of the studies.
    """
    from radinterp.capture import CaptureConfig, run_capture

    cfg = CaptureConfig(
        model=model, data=str(data), out=str(out), sites=list(site), data_kind=data_kind,
        batch_size=batch_size, dtype=dtype, model_dtype=model_dtype, max_studies=max_studies,
        token_filter=token_filter, with_report=with_report and not generate, generate=generate,
        max_new_tokens=max_new_tokens, shard_mb=shard_mb, device=device,
        image_size=image_size, seed=seed, trust_remote_code=trust_remote_code, progress=progress,
    )
    res = run_capture(cfg, overwrite=overwrite)
    typer.echo(
        f"rank {res.rank}/{res.world_size}: {res.studies_captured} studies captured, "
        f"{res.studies_already_done} already done, {res.studies_skipped} skipped, "
        f"{res.rows_written} rows -> {res.out}"
    )


def register(app: typer.Typer) -> None:
    add_command(app, "capture", capture_command)
