"""``radinterp eval`` settings."""

from __future__ import annotations

import dataclasses

from radinterp.config import BaseConfig

ROW_CHOICES = ("auto", "held_out", "all")


@dataclasses.dataclass
class EvalConfig(BaseConfig):
    """What to evaluate and how much of it."""

    sae: str
    """SAE folder (sae-lens or dictionary_learning layout)."""
    acts: str
    """Activation store to evaluate on."""
    out: str
    """Output folder: metrics.json, metrics.html, parts/ (resumable), cfg.json."""
    site: str | None = None
    """Store site; default: the SAE's own site (``cfg.site``), else the store's only site."""
    rows: str = "auto"
    """``held_out``: the last rows training held out (``train_cfg.json``'s
    ``plan.held_out_tokens``, the store the SAE was trained on); ``all``: every row (a store
    the SAE never saw); ``auto``: held_out when ``--acts`` is the SAE's training store, else all."""
    max_tokens: int | None = None
    """Evaluate at most this many rows (the first of the selection); None: all."""
    chunk_rows: int = 4096
    """Rows encoded at a time."""
    model: str | None = None
    """Model for the fidelity splice; default: the store manifest's model."""
    data: str | None = None
    """Studies the store was captured from (default: the manifest's data path)."""
    fidelity_studies: int = 16
    """Studies (with reports) to splice on; 0 skips fidelity."""
    fidelity_batch: int = 4
    """Studies per forward."""
    fidelity_method: str = "auto"
    """auto / suffix (re-run only the layers after an LM site) / edit (full forwards)."""
    random_fidelity: bool = True
    """Also splice the random SAE's reconstruction (one more suffix pass)."""
    probe_studies: int | None = None
    """Studies for k-sparse probing (None: all in the store; 0 skips probing)."""
    probe_min_each: int = 4
    """A label is probed when it has at least this many positive and negative studies."""
    seed: int = 0
    """Seed of the random SAE and of the probing split."""
    device: str = "cpu"
    """Torch device."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.rows not in ROW_CHOICES:
            raise ValueError(f"rows must be one of {', '.join(ROW_CHOICES)}, got {self.rows!r}; "
                             "pass --rows held_out, all or auto")
        for name in ("chunk_rows", "fidelity_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}; pass a positive value")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}; pass a positive "
                             "--max-tokens or leave it out")
        if self.fidelity_studies < 0 or (self.probe_studies is not None and self.probe_studies < 0):
            raise ValueError("fidelity_studies / probe_studies must be >= 0; pass 0 to skip a part")
        if self.fidelity_method not in ("auto", "suffix", "edit"):
            raise ValueError(f"unknown fidelity method {self.fidelity_method!r}; use auto, suffix or edit")
