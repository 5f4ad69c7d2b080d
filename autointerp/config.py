"""``AutointerpConfig``: every option of ``radinterp autointerp``, validated with fixes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import dataclasses
from typing import Any

from autointerp.clients.base import CLIENTS, is_loopback_url
from autointerp.explainers import EXPLAINERS
from autointerp.scorers import SCORERS
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
    client: str = "local"
    """LLM client for LLM explainers and scorers (``autointerp.clients.CLIENTS``): ``local``
    (in-process, nothing leaves the machine) or ``openai`` (an OpenAI-compatible server)."""
    base_url: str | None = None
    """OpenAI-compatible server URL (``client=openai``; default ``http://127.0.0.1:8000/v1``);
    non-loopback needs ``allow_external_endpoint``."""
    model: str | None = None
    """LLM model: a name the server lists (``openai``, required) or a local folder / .gguf
    (``local``; default SmolLM2-135M-Instruct)."""
    allow_external_endpoint: bool = False
    """Allow a non-loopback ``base_url`` (sends report text, patient data, off this machine)."""
    key_env: str = "OPENAI_API_KEY"
    """Environment variable holding the API key (``openai``); the key itself is never saved."""
    concurrency: int = 1
    """Latents processed at once, and LLM requests in flight (``openai``)."""
    max_tokens: int = 256
    """Tokens an LLM explainer may generate per explanation."""
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
            EXPLAINERS.get(name)
        if not self.explainers:
            raise ValueError("no explainer given; pass --explainer enrichment")
        for name in self.scorers or []:
            SCORERS.get(name)
        for name in ("top_k", "reservoir", "n_quantiles", "per_quantile", "concurrency",
                     "max_tokens"):
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
        cls = CLIENTS.get(self.client)
        if self.base_url and "base_url" not in _fields(cls.config_class):
            raise ValueError(f"--base-url is for a server client; the {self.client} client runs "
                             "in-process (fix: pass --client openai or drop --base-url)")
        if self.needs_llm:
            self.client_config()  # validate now (e.g. --model for openai), not mid-run
            if "vision" in self.explainers and not cls.accepts_images:
                raise ValueError(f"the {self.client} client takes text only and the vision "
                                 "explainer sends images (fix: use --explainer llm, or "
                                 "--client openai --base-url URL --model NAME of a vision model)")

    @property
    def needs_llm(self) -> bool:
        """Whether an explainer or scorer asks an LLM client."""
        return (any(EXPLAINERS.get(n).needs_llm for n in self.explainers)
                or any(SCORERS.get(n).needs_llm for n in self.scorers or []))

    def client_options(self, cache_dir: str | None = None) -> dict[str, Any]:
        """Keyword options of the ``client``'s config from this run's fields (those its config
        class has; unset ones keep the client's defaults)."""
        wanted = {"model": self.model, "base_url": self.base_url, "key_env": self.key_env,
                  "allow_external_endpoint": self.allow_external_endpoint,
                  "concurrency": self.concurrency, "cache_dir": cache_dir}
        names = _fields(CLIENTS.get(self.client).config_class)
        return {k: v for k, v in wanted.items() if k in names and v is not None}

    def client_config(self, cache_dir: str | None = None):
        """The ``client``'s validated config for this run."""
        return CLIENTS.get(self.client).config_class(**self.client_options(cache_dir))

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


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


__all__ = ["AutointerpConfig", "parse_features"]
