"""The scorer interface: an explanation and the latent's held-out data in, a ``Score`` out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autointerp.evidence import StudyEvidence
from autointerp.explainers.base import Explanation
from autointerp.records import LatentRecords
from autointerp.sampling import LatentSample, SampleConfig
from radinterp.registry import Registry

if TYPE_CHECKING:
    from autointerp.clients.base import ChatClient
    from autointerp.render import ExampleRenderer


@dataclass
class ScoreContext:
    """What every scorer may read besides the explanation and the sample."""

    records: LatentRecords
    """The SAE's latent records (per-study maxima for split-wide statistics)."""
    evidence: dict[str, StudyEvidence]
    """Study id -> its evidence."""
    sample_cfg: SampleConfig
    """The split the samples were drawn with (``sampling.in_test``)."""
    renderer: ExampleRenderer | None = None
    """Examples as text (LLM judges)."""
    client: ChatClient | None = None
    """The chat client LLM judges ask (``autointerp.clients``)."""


@dataclass
class Score:
    """One scorer's verdict on one explanation; ``value`` None when it could not score."""

    latent: int
    scorer: str
    value: float | None
    details: dict[str, Any] = field(default_factory=dict)
    """What the value rests on (selected finding, AUROCs, counts), JSON-serialisable."""
    error: str | None = None


class Scorer(ABC):
    """Scores an ``Explanation`` on the latent's held-out test set."""

    name: str = ""
    needs_llm: bool = False

    def prepare(self, ctx: ScoreContext) -> None:  # noqa: B027  (optional hook)
        """Called once per run before scoring (load models, check the data fits)."""

    @abstractmethod
    def score(self, explanation: Explanation, sample: LatentSample, ctx: ScoreContext) -> Score:
        """Score ``explanation`` of ``sample.latent``; never read ``sample.explain`` for the
        measurement itself."""

    def latent_details(self, sample: LatentSample, ctx: ScoreContext) -> dict[str, Any] | None:
        """What the scorer knows of the latent without any explanation (written beside a
        failed explanation, so a summary can count it as not naming anything), or None."""
        return None

    async def ascore(self, explanation: Explanation, sample: LatentSample,
                     ctx: ScoreContext) -> Score:
        """``score`` for the pipeline's event loop; LLM judges await their client here."""
        return self.score(explanation, sample, ctx)


SCORERS: Registry[type[Scorer]] = Registry("scorer")
"""Scorer classes by name; the CLI's ``--scorers`` choices."""


__all__ = ["SCORERS", "Score", "ScoreContext", "Scorer"]
