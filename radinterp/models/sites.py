"""Canonical site names: the only way stages name places in a model.

``lm.blocks.{i}.resid_post``  output of language-model decoder layer i (residual stream)
``lm.blocks.{i}.resid_pre``   input of decoder layer i
``vision.blocks.{i}``         output of vision-tower block i
``projector``                 output of the multimodal projector (image tokens in LM space)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PATTERNS = {
    "lm_resid_post": re.compile(r"^lm\.blocks\.(\d+)\.resid_post$"),
    "lm_resid_pre": re.compile(r"^lm\.blocks\.(\d+)\.resid_pre$"),
    "vision_block": re.compile(r"^vision\.blocks\.(\d+)$"),
    "projector": re.compile(r"^projector$"),
}

SITE_FORMS = ("lm.blocks.{i}.resid_post", "lm.blocks.{i}.resid_pre", "vision.blocks.{i}", "projector")


@dataclass(frozen=True)
class Site:
    """A parsed canonical site name."""

    name: str
    family: str  # lm_resid_post | lm_resid_pre | vision_block | projector
    layer: int | None

    @property
    def order(self) -> tuple[int, int]:
        """Execution order within one forward: vision blocks, projector, then LM layers."""
        if self.family == "vision_block":
            return (0, self.layer or 0)
        if self.family == "projector":
            return (1, 0)
        assert self.layer is not None
        return (2, 2 * self.layer + (1 if self.family == "lm_resid_post" else 0))


def parse_site(name: str) -> Site:
    """Parse a canonical site name, or raise with the accepted forms."""
    for family, pat in _PATTERNS.items():
        m = pat.match(name)
        if m:
            return Site(name, family, int(m.group(1)) if m.groups() else None)
    raise ValueError(
        f"unknown site name {name!r}; use one of the forms {', '.join(SITE_FORMS)} "
        "(e.g. 'lm.blocks.15.resid_post')"
    )
