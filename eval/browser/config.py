"""Configuration of the feature browser (saved as ``OUT/cfg.json``)."""

from __future__ import annotations

from dataclasses import dataclass

from radinterp.config import BaseConfig


@dataclass
class BrowserConfig(BaseConfig):
    """Which stage folders the browser reads and where it writes the site."""

    out: str
    """Output folder: index.html, features/<i>.html, plotly.min.js, heatmaps/, bridge_png/."""
    autointerp: str
    """A ``radinterp autointerp`` output folder (its features are the browser's pages)."""
    steering: str | None = None
    """A ``radinterp steer`` output folder (steering.json, generations.jsonl); None: no steering."""
    bridge: str | None = None
    """A ``radinterp bridge`` output folder (bridge.json, png/); None: no bridge."""
    sae_eval: str | None = None
    """A ``radinterp eval`` output folder (metrics.json): the headline of the index."""
    n_generations: int = 3
    """Example generations shown per steered arm (unsteered beside steered, test split)."""

    def __post_init__(self) -> None:
        if not str(self.out).strip() or not str(self.autointerp).strip():
            raise ValueError("out and autointerp must be folders; pass --out DIR --autointerp DIR")
        if self.n_generations < 0:
            raise ValueError(f"n_generations {self.n_generations} is negative; pass 0 or more")
        for name in ("steering", "bridge", "sae_eval"):
            if getattr(self, name) is not None and not str(getattr(self, name)).strip():
                setattr(self, name, None)


__all__ = ["BrowserConfig"]
