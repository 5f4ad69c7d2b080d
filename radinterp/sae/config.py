"""The SAE's own config: shape, sparsity and Matryoshka nesting, saved beside the weights."""

from __future__ import annotations

import dataclasses
from typing import Any

from radinterp.config import BaseConfig


@dataclasses.dataclass
class SAEConfig(BaseConfig):
    """Shape and sparsity of a Matryoshka BatchTopK SAE (inference form: JumpReLU)."""

    d_in: int
    """Width of the activations the SAE reads (the model's ``d_model`` at ``site``)."""

    d_sae: int
    """Number of latents."""

    k: float = 32
    """Average number of active latents per token during BatchTopK training."""

    widths: list[int] = dataclasses.field(default_factory=list)
    """Matryoshka prefix widths, strictly increasing and ending at ``d_sae``; empty means
    ``[d_sae]`` (a plain BatchTopK SAE)."""

    architecture: str = "matryoshka_batchtopk"
    """Training architecture name (a key of ``radinterp.sae.ARCHITECTURES``)."""

    apply_b_dec_to_input: bool = True
    """Subtract ``b_dec`` from the input before encoding (sae-lens / dictionary_learning
    convention)."""

    site: str | None = None
    """Canonical site the SAE was trained on (e.g. ``lm.blocks.15.resid_post``)."""

    model: str | None = None
    """Model the activations came from (e.g. ``microsoft/maira-2``)."""

    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Free-form provenance (store path, token counts); never secrets."""

    def __post_init__(self) -> None:
        for name in ("d_in", "d_sae"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.k > 0:
            raise ValueError(f"k must be > 0, got {self.k}; pass --k with a positive value")
        if self.k > self.d_sae:
            raise ValueError(
                f"k={self.k} is larger than d_sae={self.d_sae}; pass --k <= --d-sae "
                f"(typically k is 16-128 and d_sae is 4-32x d_in)"
            )
        self.widths = list(self.widths) if self.widths else [self.d_sae]
        self.widths = validate_widths(self.widths, self.d_sae)

    @property
    def k_int(self) -> int:
        """``k`` as used for BatchTopK selection (rounded to the nearest integer >= 1)."""
        return max(1, int(round(self.k)))


def validate_widths(widths: list[int], d_sae: int) -> list[int]:
    """Check Matryoshka widths: positive ints, strictly increasing, last == ``d_sae``."""
    out = [int(w) for w in widths]
    if any(w != float(v) for w, v in zip(out, widths)):
        raise ValueError(f"widths must be integers, got {widths}")
    if any(w <= 0 for w in out):
        raise ValueError(f"widths must be positive, got {out}; e.g. --widths 128,512,{d_sae}")
    if any(b <= a for a, b in zip(out, out[1:])):
        raise ValueError(
            f"widths must be strictly increasing, got {out}; sort them, e.g. "
            f"--widths {','.join(str(w) for w in sorted(set(out)))}"
        )
    if out[-1] != d_sae:
        raise ValueError(
            f"the last Matryoshka width must equal d_sae={d_sae}, got {out}; append {d_sae} "
            f"(e.g. --widths {','.join(str(w) for w in out if w < d_sae)},{d_sae})"
        )
    return out
