"""``DemoConfig``: every size of ``radinterp demo``, and the ``quick`` / ``full`` presets."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from radinterp.config import BaseConfig

STAGE_NAMES = ("phantoms", "capture", "twins", "sae", "report_quality", "recovery", "sae_eval",
               "autointerp", "autointerp_llm", "steering", "methods", "bridge", "browser")
"""Every stage, in run order (each writes the folder of the same name under ``out``, except
``capture``, which writes ``acts``)."""

PRESETS: dict[str, dict[str, object]] = {
    "full": {"llm_features": 2},
    "quick": {"n_studies": 32, "expansion": 2, "sae_passes": 5, "eval_studies": 0,
              "explain_top": 64, "fidelity_studies": 2, "steer_n": 4, "steer_tokens": 16,
              "method_epochs": 5, "min_positives": 3, "n_permutations": 50},
}
"""Sizes each preset changes from the ``DemoConfig`` defaults (which are ``full``); measured
times in ``docs/demo.md``."""


@dataclass
class DemoConfig(BaseConfig):
    """The demo run (defaults: the ``full`` preset)."""

    out: str = "runs/demo"
    """Folder holding one sub-folder per stage."""
    data: str | None = None
    """A folder of real radiographs (image folder with metadata.jsonl, e.g.
    ``../shared/data/real-cxr``) instead of phantoms; stages needing planted truth are skipped."""
    model: str = "demo"
    """Adapter to interpret (default: the demo radiology model trained on phantoms)."""
    n_studies: int = 200
    """Phantom studies to capture (half choose each finding's latent, half score it); with
    ``data``: the first this many studies of the folder."""
    seed: int = 20261127
    """Phantom seed (not one the demo model was trained on); steering's held-out phantoms use
    seed + 1."""
    site: str = "lm.blocks.15.resid_post"
    """Residual site (layer 15, as in the MAIRA-2 SAE study)."""
    token_filter: str = "all"
    """Positions to capture (TOKEN_FILTERS name); recovery scores the image and text ones."""
    sae_tokens: str = "all"
    """Positions the SAE trains on: ``all`` captured ones or ``image`` (patch tokens only)."""
    expansion: int = 4
    """d_sae = expansion * d_model."""
    k: int = 16
    """Average active latents per token."""
    sae_passes: int = 20
    """Training passes over the captured tokens."""
    eval_studies: int = 16
    """Studies whose generated reports are scored (0 skips the stage)."""
    fidelity_studies: int = 16
    """Studies the SAE eval splices the SAE (and a random SAE) into (0: reconstruction and
    probing only)."""
    explain_top: int | None = None
    """Latents the enrichment explainer explains, most frequent first (None: every latent that
    fires)."""
    llm_features: int = 0
    """Latents the local LLM explainer (SmolLM2) also explains, most frequent first (0 skips it;
    the ``full`` preset: 2, about 95 s for both and their random-SAE partners on an idle 2-core
    box). SmolLM2-135M is plumbing, not a judge: its replies are often unparsable."""
    scorers: list[str] | None = None
    """Autointerp scorers (``autointerp.scorers.SCORERS``); None: its default (embedding, and
    planted on phantoms)."""
    steer_finding: str = "Pleural Effusion"
    """Finding the steering stage steers toward (a label of ``radinterp.labels``)."""
    steer_n: int = 8
    """Held-out phantoms of the steering stage (half select the coefficient, half test it)."""
    steer_tokens: int = 32
    """Tokens generated per steered report."""
    steer_coefs: list[float] = field(default_factory=lambda: [1.0])
    """Steering coefficients (multiples of the residual norm)."""
    method_epochs: int = 20
    """Training epochs of the reference methods (CSR stages, INSIGHT, radiomic fingerprint)."""
    methods: list[str] = field(default_factory=lambda: ["csr", "insight", "radiomics"])
    """Reference methods run on the captured studies and bridged to the SAE (empty: skip)."""
    method_opts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per method, options over the demo's small settings (e.g. ``{"radiomics": {"workers": 1}}``)."""
    min_positives: int = 5
    """Positive training studies a finding needs to enter the reference methods."""
    n_permutations: int = 100
    """Label permutations of the bridge's permutation baseline."""
    image_size: int | None = None
    """Override the adapter's image side (tests use 112 with ``tiny``); None keeps its own."""
    progress: bool = True
    """Progress bars."""

    def __post_init__(self) -> None:
        if self.n_studies < 4:
            raise ValueError(f"n_studies must be >= 4 to train anything, got {self.n_studies}; "
                             "pass --n-studies 64 or more")
        if self.expansion < 1 or self.k < 1 or self.sae_passes < 1:
            raise ValueError("expansion, k and sae_passes must be positive; pass e.g. 4, 16, 20")
        if not 0 <= self.eval_studies <= self.n_studies:
            raise ValueError(f"eval_studies must be in 0..n_studies ({self.n_studies}); pass a "
                             "smaller --eval-studies")
        if self.sae_tokens not in ("image", "all"):
            raise ValueError(f"sae_tokens must be 'image' or 'all', got {self.sae_tokens!r}; pass "
                             "--sae-tokens image or all")
        if self.explain_top is not None and self.explain_top < 1:
            raise ValueError(f"explain_top must be >= 1 or None, got {self.explain_top}; pass "
                             "e.g. --explain-top 100 or leave it out (every latent)")
        for name in ("fidelity_studies", "llm_features", "steer_n"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}; pass 0 to skip")
        if self.steer_n == 1 or self.steer_tokens < 1 or self.method_epochs < 1:
            raise ValueError("steer_n must be 0 or >= 2, steer_tokens and method_epochs >= 1; "
                             "pass e.g. --steer-n 8")
        if self.n_permutations < 1:
            raise ValueError(f"n_permutations must be >= 1, got {self.n_permutations}; pass e.g. 100")
        self.steer_coefs = [float(c) for c in self.steer_coefs]
        self.methods = list(self.methods)
        unknown = sorted(set(self.method_opts) - set(self.methods))
        if unknown:
            raise ValueError(f"method_opts names {unknown}, not among methods {self.methods}; "
                             "drop them or add the methods")
        if self.data is not None:
            if not (Path(self.data) / "metadata.jsonl").is_file() and not Path(self.data).is_file():
                raise FileNotFoundError(f"--data {self.data} holds no metadata.jsonl; pass a folder "
                                        "of radiographs with metadata.jsonl (e.g. "
                                        "../shared/data/real-cxr) or leave --data out for phantoms")

    @property
    def phantom(self) -> bool:
        """Whether the run is on phantoms (planted truth known)."""
        return self.data is None

    @classmethod
    def preset(cls, name: str, **overrides) -> DemoConfig:
        """The ``name`` preset (``full`` or ``quick``) with ``overrides`` on top."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; pass one of: {', '.join(PRESETS)}")
        known = {f.name for f in fields(cls)}
        bad = sorted(set(overrides) - known)
        if bad:
            raise ValueError(f"DemoConfig has no field(s) {bad}; valid: {', '.join(sorted(known))}")
        return cls(**{**PRESETS[name], **overrides})


__all__ = ["PRESETS", "STAGE_NAMES", "DemoConfig"]
