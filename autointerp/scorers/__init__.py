"""Scorers (one registry, ``SCORERS``): ``planted`` (phantom data), ``embedding`` (MiniLM),
and the LLM judges ``detection`` and ``fuzzing`` (balanced accuracy, ``scorers.judge``)."""

from autointerp.scorers import embedding, judge, planted  # noqa: F401  (importing registers them)
from autointerp.scorers.base import SCORERS, Score, ScoreContext, Scorer

__all__ = ["SCORERS", "Score", "ScoreContext", "Scorer"]
