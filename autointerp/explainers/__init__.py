"""Explainers (one registry, ``EXPLAINERS``): ``enrichment`` (offline, the default). The LLM
explainers named by the issue (``llm``, ``llm-evidence``, ``vision``) are not built yet."""

from autointerp.explainers import enrichment  # noqa: F401  (importing registers it)
from autointerp.explainers.base import EXPLAINERS, ExplainContext, Explainer, Explanation
from autointerp.explainers.enrichment import EnrichmentExplainer, enrichment_table

LLM_EXPLAINERS = ("llm", "llm-evidence", "vision")
"""Explainer names the issue defines that need an LLM client: refused until built."""

__all__ = ["EXPLAINERS", "LLM_EXPLAINERS", "EnrichmentExplainer", "ExplainContext", "Explainer",
           "Explanation", "enrichment_table"]
