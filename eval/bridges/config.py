"""Configuration of one bridge run (saved as ``OUT/cfg.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from radinterp.config import BaseConfig
from radinterp.sae.baselines import SPARSITY_MODES

SCOPES = ("image", "report")
"""Positions a feature's study score is taken over: the current frontal image's patch tokens
(image slot 0: what the model sees) or the teacher-forced report tokens (what it reads)."""


@dataclass
class BridgeConfig(BaseConfig):
    """SAE features vs reference methods (CSR, INSIGHT, radiomics), planted findings and labels."""

    sae: str
    """SAE folder (sae-lens or dictionary_learning layout), trained on ``acts``' site."""
    acts: str
    """Activation store the SAE reads (captured with image and report positions kept)."""
    out: str
    """Output folder: cfg.json, parts/*.json, bridge.json, bridge.html, png/."""
    methods: list[str] = field(default_factory=list)
    """Reference-method run folders (``radinterp method ...`` outputs) on the store's studies."""
    data: str | None = None
    """Study folder / .jsonl if it moved since capture (None: the store's manifest path)."""
    twins: str | None = None
    """Store of the phantoms' healthy twins (``write_twin_jsonl`` + capture, same model and
    site, image positions): adds the counterfactual (the matched feature on the study vs on its
    twin) and the study-minus-twin map beside the other maps. None: no counterfactual."""
    site: str | None = None
    """Store site the SAE reads (None: the SAE's own site)."""
    seed: int = 0
    """Seed of the selection / report split, the random SAE and the permutations."""
    report_fraction: float = 0.5
    """Share of the methods' test studies (all store studies without methods) whose numbers are
    reported; every other study is for selecting features."""
    n_permutations: int = 200
    """Label permutations of the report split per target (the permutation baseline)."""
    random_mode: str = "threshold"
    """Sparsity of the random SAE: one global threshold or per-token top-k (same mean L0)."""
    sample_rows: int = 8192
    """Activation rows (image + report) the random SAE's mean and sparsity are matched on."""
    probe_l2: float = 0.1
    """L2 penalty of the linear-probe baselines (logistic for 0/1 targets, ridge for scores) on
    standardised mean- and max-pooled residuals, as in the recovery issue's probe."""
    fdr: float = 0.05
    """False-discovery rate of the radiomics correlations (Benjamini-Hochberg)."""
    n_examples: int = 4
    """Report-split studies drawn side by side (SAE / CSR / INSIGHT map, mask) in bridge.html."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if not 0.0 < self.report_fraction < 1.0:
            raise ValueError(f"report_fraction {self.report_fraction} must lie in (0, 1); "
                             "pass e.g. 0.5")
        if self.n_permutations < 1:
            raise ValueError(f"n_permutations {self.n_permutations} must be >= 1; pass e.g. 200")
        if self.random_mode not in SPARSITY_MODES:
            raise ValueError(f"random_mode {self.random_mode!r} is not one of {SPARSITY_MODES}; "
                             "pass threshold or topk")
        if self.sample_rows < 16:
            raise ValueError(f"sample_rows {self.sample_rows} is too few; pass e.g. 8192")
        if self.probe_l2 <= 0:
            raise ValueError(f"probe_l2 {self.probe_l2} must be > 0; pass e.g. 0.1")
        if not 0.0 < self.fdr < 1.0:
            raise ValueError(f"fdr {self.fdr} must lie in (0, 1); pass e.g. 0.05")
        if self.n_examples < 0:
            raise ValueError(f"n_examples {self.n_examples} is negative; pass 0 or more")
        self.methods = [m for m in (s.strip() for s in self.methods) if m]


__all__ = ["SCOPES", "BridgeConfig"]
