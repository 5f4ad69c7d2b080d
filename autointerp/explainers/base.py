"""The explainer interface: a latent's explanation-set examples in, an ``Explanation`` out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autointerp.evidence import StudyEvidence
from autointerp.sampling import LatentSample
from radinterp.registry import Registry

if TYPE_CHECKING:
    from autointerp.clients.base import ChatClient
    from autointerp.render import ExampleRenderer


@dataclass
class ExplainContext:
    """What every explainer may read besides the sample."""

    evidence: dict[str, StudyEvidence]
    """Study id -> its evidence (``autointerp.evidence.study_evidence``)."""
    n_side: int
    """Side of the image patch grid (for region phrases)."""
    renderer: ExampleRenderer | None = None
    """Examples as text (LLM explainers)."""
    client: ChatClient | None = None
    """The chat client LLM explainers ask (``autointerp.clients``)."""
    max_tokens: int = 256
    """Tokens an LLM explainer may generate per explanation."""


@dataclass
class Explanation:
    """One explainer's account of one latent. ``ok=False`` is a failure: never scored."""

    latent: int
    explainer: str
    text: str
    """The explanation in words ('' on failure)."""
    ok: bool = True
    error: str | None = None
    """Why it failed (``ok=False``)."""
    evidence: dict[str, Any] = field(default_factory=dict)
    """What the explanation rests on (e.g. the enrichment table), JSON-serialisable."""


class Explainer(ABC):
    """Turns a latent's explanation set (``LatentSample.explain``) into an ``Explanation``."""

    name: str = ""
    needs_llm: bool = False
    """True for explainers that call a language-model client."""

    @abstractmethod
    def explain(self, sample: LatentSample, ctx: ExplainContext) -> Explanation:
        """Explain ``sample.latent`` from ``sample.explain`` only (never the test set)."""

    async def aexplain(self, sample: LatentSample, ctx: ExplainContext) -> Explanation:
        """``explain`` for the pipeline's event loop; LLM explainers await their client here."""
        return self.explain(sample, ctx)


EXPLAINERS: Registry[type[Explainer]] = Registry("explainer")
"""Explainer classes by name; the CLI's ``--explainer`` choices."""


__all__ = ["EXPLAINERS", "ExplainContext", "Explainer", "Explanation"]
