"""``radinterp train``: registered through the ``radinterp.commands`` entry point.

The same command runs under ``torchrun --nproc_per_node N -m sae_training ...`` or
``accelerate launch -m sae_training ...`` (``python -m sae_training`` takes the same options).
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from radinterp.cli import add_command, comma_list

log = logging.getLogger(__name__)


def _ints(text: str | None) -> list[int]:
    try:
        return comma_list((text or "").replace(" ", ""), int)
    except ValueError:
        raise ValueError(f"--widths must be comma-separated integers, got {text!r}") from None


def train_command(
    acts: Path = typer.Option(..., "--acts", help="Activation store folder or .safetensors (N, d_in) file."),
    out: Path = typer.Option(..., "--out", help="Output SAE folder (resumed when it holds a checkpoint)."),
    d_sae: int = typer.Option(..., "--d-sae", help="Number of latents."),
    k: float = typer.Option(32, "--k", help="Average active latents per token (BatchTopK)."),
    widths: str = typer.Option(None, "--widths", help="Matryoshka widths W1,W2,...,d_sae (default: d_sae only)."),
    site: str = typer.Option(None, "--site", help="Store site to train on (default: the store's only site)."),
    d_in: int = typer.Option(None, "--d-in", help="Expected activation width (checked against the store)."),
    lr: float = typer.Option(None, "--lr", help="Adam learning rate (default 2e-4 / sqrt(d_sae / 16384))."),
    lr_schedule: str = typer.Option("linear_decay", "--lr-schedule", help="constant, linear_decay or cosine."),
    warmup_steps: int = typer.Option(0, "--warmup-steps", help="Linear warm-up steps."),
    batch_size: int = typer.Option(None, "--batch-size", help="Tokens per step over all processes (default 4096; smaller for tiny stores)."),
    total_tokens: int = typer.Option(None, "--total-tokens", help="Training tokens (default: several passes over the store)."),
    held_out_tokens: int = typer.Option(None, "--held-out-tokens", help="Rows at the end of the store kept out of training to calibrate the inference threshold (default: a tenth, at most 8192)."),
    seed: int = typer.Option(0, "--seed", help="Seed for init and data order."),
    checkpoint_every: int = typer.Option(1000, "--checkpoint-every", help="Checkpoint interval in steps (0 = never)."),
    normalize: str = typer.Option("none", "--normalize", help="none or expected_norm (folded into the saved SAE)."),
    b_dec_init: str = typer.Option("geometric_median", "--b-dec-init", help="geometric_median, mean or zeros."),
    on_nonfinite: str = typer.Option("stop", "--on-nonfinite", help="NaN/inf activations: stop or skip."),
    aux_k_coef: float = typer.Option(1.0, "--aux-k-coef", help="Weight of the auxiliary-k (dead latent) loss."),
    kernels: str = typer.Option("auto", "--kernels", help="sparse, dense or auto."),
    device: str = typer.Option("auto", "--device", help="Torch device (auto = cuda:LOCAL_RANK or cpu)."),
    log_every: int = typer.Option(50, "--log-every", help="Metrics interval in steps."),
    wandb_project: str = typer.Option(None, "--wandb-project", help="Also log to this wandb project."),
    tensorboard_dir: str = typer.Option(None, "--tensorboard-dir", help="Also log TensorBoard scalars here."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Retrain even if --out holds a finished or checkpointed run."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Train a Matryoshka BatchTopK SAE on stored activations (one process or many)."""
    from sae_training import distributed as D
    from sae_training.config import TrainConfig
    from sae_training.data import open_activation_source
    from sae_training.trainer import Trainer

    try:
        cfg = TrainConfig(
            d_sae=d_sae, k=k, widths=_ints(widths), d_in=d_in, lr=lr, lr_schedule=lr_schedule,
            warmup_steps=warmup_steps, batch_size=batch_size, total_tokens=total_tokens,
            held_out_tokens=held_out_tokens, seed=seed, checkpoint_every=checkpoint_every, normalize=normalize,
            b_dec_init=b_dec_init, on_nonfinite=on_nonfinite, aux_k_coef=aux_k_coef,
            kernels=kernels, device=device, log_every=log_every, progress=progress,
            wandb_project=wandb_project, tensorboard_dir=tensorboard_dir,
        )
        source = open_activation_source(acts, site=site)
        sae = Trainer(cfg, source, out, overwrite=overwrite).fit()
    finally:
        D.cleanup()
    typer.echo(f"trained SAE d_in={sae.d_in} d_sae={sae.d_sae} k={sae.cfg.k} -> {out}")


def register(app: typer.Typer) -> None:
    add_command(app, "train", train_command)
