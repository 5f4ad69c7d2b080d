"""Capture configuration (saved, resolved, in the store manifest)."""

from __future__ import annotations

from dataclasses import dataclass, field

from radinterp.config import BaseConfig
from radinterp.store.format import STORE_DTYPES

MODEL_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class CaptureConfig(BaseConfig):
    """What to run, over which studies, and where the activations go."""

    model: str
    """Adapter name (``tiny``, ``demo``, ``maira2``) or a model folder / Hub id."""
    data: str
    """Studies: a phantom folder, an image folder with metadata.jsonl, or a .jsonl file."""
    out: str
    """Store folder; an existing store with the same settings is resumed."""
    sites: list[str] = field(default_factory=lambda: ["lm.blocks.15.resid_post"])
    """Canonical language-model sites (``lm.blocks.{i}.resid_post`` / ``resid_pre``)."""
    data_kind: str | None = None
    """Data source kind (a ``SOURCES`` name); None auto-detects from ``data``."""
    batch_size: int = 4
    """Studies per forward pass."""
    dtype: str = "bfloat16"
    """Dtype of stored activations: bfloat16, float16 or float32."""
    model_dtype: str | None = None
    """Dtype to run the model in; None = bfloat16 on GPU, float32 on CPU."""
    max_studies: int | None = None
    """Capture only the first N studies of the source (before splitting across ranks)."""
    token_filter: str = "all"
    """Positions to keep (a ``TOKEN_FILTERS`` name: all, image, text, report, maira2_sae)."""
    with_report: bool = True
    """Feed the reference report teacher-forced after the prompt, when the study has one."""
    generate: bool = False
    """Let the model write its report first (greedy, up to ``max_new_tokens``), then record
    prompt + generated tokens in one teacher-forced pass: generated positions are stored with
    kind GENERATED. (The same activations the key/value-cache steps compute, up to float
    error: tests/capture/test_generate.py checks.) Needs ``with_report=False``."""
    max_new_tokens: int = 128
    """Most generated tokens per study when ``generate``."""
    shard_mb: float = 256.0
    """Close a shard once it holds this many MiB of activations (all sites together)."""
    device: str = "auto"
    """Torch device; ``auto`` = cuda:LOCAL_RANK when CUDA is available, else cpu."""
    image_size: int | None = None
    """Override the adapter's image side (e.g. 112 for fast tests); None keeps its default."""
    seed: int = 0
    """Seed for adapters that build random weights (``tiny``)."""
    trust_remote_code: bool = False
    """Allow loading checkpoints that ship their own model code (MAIRA-2 from the Hub)."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        if not self.sites:
            raise ValueError("give at least one --site, e.g. lm.blocks.15.resid_post")
        if len(set(self.sites)) != len(self.sites):
            raise ValueError(f"duplicate sites {self.sites}; list each --site once")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.dtype not in STORE_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(STORE_DTYPES)}, got {self.dtype!r}")
        if self.model_dtype is not None and self.model_dtype not in MODEL_DTYPES:
            raise ValueError(f"model_dtype must be one of {MODEL_DTYPES} or None, got {self.model_dtype!r}")
        if self.max_studies is not None and self.max_studies < 1:
            raise ValueError(f"max_studies must be >= 1 (or None for all), got {self.max_studies}")
        if self.generate and self.with_report:
            raise ValueError("generate=True stores the model's own report after the prompt; pass "
                             "with_report=False (--no-report) instead of teacher-forcing the reference")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.shard_mb <= 0:
            raise ValueError(f"shard_mb must be > 0, got {self.shard_mb}")
        from radinterp.capture.filters import TOKEN_FILTERS

        if self.token_filter not in TOKEN_FILTERS:
            raise ValueError(f"unknown token filter {self.token_filter!r}; valid names: "
                             f"{', '.join(TOKEN_FILTERS.names())}")

    @property
    def shard_bytes(self) -> int:
        return max(1, int(self.shard_mb * (1 << 20)))
