"""``AutointerpConfig``: every option of ``radinterp autointerp``, validated with fixes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from autointerp.clients.base import is_loopback_url
from autointerp.explainers import EXPLAINERS, LLM_EXPLAINERS
from autointerp.scorers import LLM_SCORERS, SCORERS
from radinterp.config import BaseConfig

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def parse_features(text: str) -> list[int]:
    """``"0-99"`` / ``"3,7,10-12"`` -> sorted distinct latent indices."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        m = _RANGE.match(part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"--features {text!r} is not a list of indices and ranges; pass "
                             "e.g. --features 0-99 or --features 3,7,10-12")
        lo = int(m.group(1))
        out.update(range(lo, int(m.group(2) or lo) + 1))
    return sorted(out)


@dataclass
class AutointerpConfig(BaseConfig):
    """One ``radinterp autointerp`` run."""

    sae: str
    """Saved SAE folder (``radinterp train`` output)."""
    acts: str
    """Activation store the SAE reads (``radinterp capture`` output)."""
    out: str
    """Output folder: explanations.jsonl, scores.jsonl, summary.json, cfg.json (resumed)."""
    data: str | None = None
    """Studies folder; default: the studies the store was captured from."""
    features: str | None = None
    """Latents to explain, e.g. ``0-99`` or ``3,7,10-12``; default: ``top`` most frequent."""
    top: int | None = None
    """Explain the ``top`` most frequent latents (default 100 when ``features`` is unset)."""
    explainers: list[str] = field(default_factory=lambda: ["enrichment"])
    """Explainer names (``autointerp.explainers.EXPLAINERS``)."""
    scorers: list[str] | None = None
    """Scorer names (``autointerp.scorers.SCORERS``); default: ``embedding``, plus
    ``planted`` on phantom data."""
    baseline: bool = True
    """Also run every stage on a random SAE of the same shape and sparsity (``baseline``)."""
    site: str | None = None
    """Store site; default: the SAE's own site."""
    top_k: int = 20
    """Top studies kept per latent by the records pass."""
    reservoir: int = 100
    """Randomly kept activating studies per latent (quantile draws)."""
    n_quantiles: int = 10
    """Activation-quantile bins the activating examples are drawn from."""
    per_quantile: int = 4
    """Activating examples per bin and split."""
    n_negatives: int = 20
    """Random and (as many) hard negatives per split."""
    test_fraction: float = 0.5
    """Share of studies held out for scoring."""
    seed: int = 0
    """Seed of the records, split, draws and random baseline."""
    client: str | None = None
    """LLM client (``local`` / ``openai``): for LLM explainers and scorers, not built yet."""
    base_url: str | None = None
    """OpenAI-compatible server URL (``client=openai``); non-loopback needs
    ``allow_external_endpoint``."""
    model: str | None = None
    """LLM model name or path (LLM explainers, not built yet)."""
    allow_external_endpoint: bool = False
    """Allow a non-loopback ``base_url`` (sends report text, patient data, off this machine)."""
    concurrency: int = 1
    """Concurrent LLM requests (LLM explainers, not built yet)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if self.features is not None and self.top is not None:
            raise ValueError("pass --features or --top, not both")
        if self.features is not None:
            parse_features(self.features)
        if self.top is not None and self.top < 1:
            raise ValueError(f"--top must be >= 1, got {self.top}; pass e.g. --top 100")
        self.explainers = list(self.explainers)
        for name in self.explainers:
            if name in LLM_EXPLAINERS:
                raise ValueError(f"explainer {name!r} needs an LLM client, which is not built "
                                 "yet (fix: use --explainer enrichment)")
            EXPLAINERS.get(name)
        if not self.explainers:
            raise ValueError("no explainer given; pass --explainer enrichment")
        for name in self.scorers or []:
            if name in LLM_SCORERS:
                raise ValueError(f"scorer {name!r} needs an LLM client, which is not built yet "
                                 "(fix: use --scorers planted,embedding)")
            SCORERS.get(name)
        for name in ("top_k", "reservoir", "n_quantiles", "per_quantile", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got "
                                 f"{getattr(self, name)}")
        if self.n_negatives < 0:
            raise ValueError(f"--n-negatives must be >= 0, got {self.n_negatives}")
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"--test-fraction must be in (0, 1), got {self.test_fraction}; "
                             "pass e.g. 0.5")
        if self.base_url and not self.allow_external_endpoint and not is_loopback_url(self.base_url):
            raise ValueError(f"--base-url {self.base_url} is not on this machine and reports are "
                             "patient data; use a loopback server or pass "
                             "--allow-external-endpoint")

    def latents(self, frequency) -> list[int]:
        """The latents to explain given the SAE's per-latent firing ``frequency`` (d_sae,):
        ``features``, else the ``top`` (default 100) most frequent that fire."""
        d_sae = len(frequency)
        if self.features is not None:
            chosen = parse_features(self.features)
            if chosen[-1] >= d_sae:
                raise ValueError(f"--features names latent {chosen[-1]} but the SAE has "
                                 f"{d_sae}; pass indices below {d_sae}")
            return chosen
        order = sorted(range(d_sae), key=lambda f: (-float(frequency[f]), f))
        return [f for f in order if frequency[f] > 0][: self.top or 100]


__all__ = ["AutointerpConfig", "parse_features"]
