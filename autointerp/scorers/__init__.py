"""Scorers (one registry, ``SCORERS``): ``planted`` (phantom data) and ``embedding`` (MiniLM).
The LLM scorers named by the issue (``detection``, ``fuzzing``) are not built yet."""

from autointerp.scorers import embedding, planted  # noqa: F401  (importing registers them)
from autointerp.scorers.base import SCORERS, Score, ScoreContext, Scorer

LLM_SCORERS = ("detection", "fuzzing")
"""Scorer names the issue defines that need an LLM client: refused until built."""

__all__ = ["LLM_SCORERS", "SCORERS", "Score", "ScoreContext", "Scorer"]
