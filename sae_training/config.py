"""Training config for Matryoshka BatchTopK SAEs, saved as ``train_cfg.json`` beside the SAE."""

from __future__ import annotations

import dataclasses
import math

from radinterp.config import BaseConfig
from radinterp.sae.config import validate_widths
from sae_training.kernels import KERNEL_MODES

LR_SCHEDULES = ("constant", "linear_decay", "cosine")
NORMALIZATIONS = ("none", "expected_norm")
B_DEC_INITS = ("geometric_median", "mean", "zeros")
NONFINITE_POLICIES = ("stop", "skip")


@dataclasses.dataclass
class TrainConfig(BaseConfig):
    """Everything that decides a training run; the same config reproduces the same weights."""

    d_sae: int
    """Number of latents."""

    k: float = 32
    """Average active latents per token (BatchTopK over the global batch)."""

    widths: list[int] = dataclasses.field(default_factory=list)
    """Matryoshka prefix widths, strictly increasing, ending at ``d_sae``; empty = [d_sae]."""

    d_in: int | None = None
    """Expected activation width; None takes it from the store (a mismatch is an error)."""

    lr: float | None = None
    """Adam learning rate; None = 2e-4 / sqrt(d_sae / 2**14) (Bussmann et al. scaling)."""

    lr_schedule: str = "linear_decay"
    """One of constant, linear_decay (to 0 over the last ``decay_fraction``), cosine."""

    warmup_steps: int = 0
    """Linear learning-rate warm-up steps."""

    decay_fraction: float = 0.2
    """Fraction of the run over which linear_decay goes to 0."""

    batch_size: int | None = None
    """Tokens per optimizer step over all processes (each rank gets batch_size / world);
    None = 4096, or about 1/8 of the store when it holds fewer than 32,768 tokens."""

    total_tokens: int | None = None
    """Training tokens; None = enough passes over the store for 2000 steps (1 to 100
    passes), so a store of a few thousand tokens trains too."""

    held_out_tokens: int | None = None
    """Rows reserved at the end of the source (the last studies of a store) and never trained
    on; after training the inference (JumpReLU) threshold is calibrated on them so that the
    saved SAE's mean L0 is ``k``, and both forms' quality there goes to calibration.json.
    None = a tenth of the source, at most 8192 rows."""

    seed: int = 0
    """Seed for initialisation and data order."""

    checkpoint_every: int = 1000
    """Save a resumable checkpoint every this many steps (0 = never)."""

    aux_k_coef: float = 1.0
    """Weight of the auxiliary-k loss that revives dead latents (sae-lens convention)."""

    aux_k: int | None = None
    """Dead latents used by the aux-k loss per token; None = d_in // 2."""

    dead_tokens: int | None = None
    """A latent that has not fired for this many tokens is dead; None = min(10M, total/5)."""

    dense_frequency: float = 0.1
    """A latent firing on more than this fraction of tokens counts as dense."""

    normalize: str = "none"
    """none, or expected_norm: scale inputs so E||x||^2 = d_in, folded into the saved SAE."""

    b_dec_init: str = "geometric_median"
    """b_dec from the first batch: geometric_median, mean, or zeros."""

    on_nonfinite: str = "stop"
    """NaN/inf activations: stop (error naming the shard) or skip the batch."""

    grad_clip: float | None = 1.0
    """Clip the global gradient norm to this value; None disables."""

    kernels: str = "auto"
    """sparse (embedding_bag gathers), dense (matmuls), or auto (sparse on CPU, dense on CUDA)."""

    matmul_dtype: str = "auto"
    """float32 or bfloat16 for the encoder matmul; auto = bfloat16 on CUDA, float32 on CPU."""

    device: str = "auto"
    """cpu, cuda, cuda:N, or auto (this rank's GPU when CUDA is available)."""

    log_every: int = 50
    """Log metrics every this many steps."""

    progress: bool = True
    """Show a tqdm progress bar on rank 0."""

    wandb_project: str | None = None
    """Log to this Weights & Biases project when wandb is installed."""

    tensorboard_dir: str | None = None
    """Write TensorBoard scalars here when tensorboard is installed."""

    def __post_init__(self) -> None:
        if not isinstance(self.d_sae, int) or self.d_sae <= 0:
            raise ValueError(f"d_sae must be a positive integer, got {self.d_sae!r}")
        if not self.k > 0 or self.k > self.d_sae:
            raise ValueError(f"k={self.k} must be in (0, d_sae={self.d_sae}]; pass a smaller --k")
        self.widths = validate_widths(list(self.widths) or [self.d_sae], self.d_sae)
        checks = {
            "lr_schedule": LR_SCHEDULES, "normalize": NORMALIZATIONS,
            "b_dec_init": B_DEC_INITS, "on_nonfinite": NONFINITE_POLICIES,
            "kernels": (*KERNEL_MODES, "auto"), "matmul_dtype": ("auto", "float32", "bfloat16"),
        }
        for name, valid in checks.items():
            if getattr(self, name) not in valid:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {', '.join(valid)}")
        if self.batch_size is not None and self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.total_tokens is not None and self.total_tokens < (self.batch_size or 1):
            raise ValueError(
                f"total_tokens={self.total_tokens} is less than one batch ({self.batch_size}); "
                f"raise --total-tokens or lower --batch-size"
            )
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not 0.0 <= self.decay_fraction <= 1.0:
            raise ValueError(f"decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if self.held_out_tokens is not None and self.held_out_tokens <= 0:
            raise ValueError(f"held_out_tokens must be positive, got {self.held_out_tokens}; "
                             f"pass --held-out-tokens N >= 1 or leave it unset")
        for name in ("warmup_steps", "checkpoint_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.log_every <= 0:
            raise ValueError(f"log_every must be positive, got {self.log_every}")

    @property
    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(self.d_sae / 2**14)

    def lr_multiplier(self, step: int, total_steps: int) -> float:
        """Learning-rate multiplier at ``step`` (0-based) of ``total_steps``."""
        if self.warmup_steps and step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.lr_schedule == "constant":
            return 1.0
        if self.lr_schedule == "cosine":
            span = max(1, total_steps - self.warmup_steps)
            progress = min(1.0, (step - self.warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        decay_steps = int(total_steps * self.decay_fraction)
        decay_start = total_steps - decay_steps
        if decay_steps <= 0 or step < decay_start:
            return 1.0
        return max(0.0, (total_steps - step) / decay_steps)
