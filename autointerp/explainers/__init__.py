"""Explainers (one registry, ``EXPLAINERS``): ``enrichment`` (offline, the default), and the
LLM explainers ``llm`` (delphi's recipe), ``llm-evidence`` (plus the enrichment table) and
``vision`` (radiographs with heatmaps, for endpoints that take images)."""

from autointerp.explainers import enrichment, llm, vision  # noqa: F401  (importing registers them)
from autointerp.explainers.base import EXPLAINERS, ExplainContext, Explainer, Explanation
from autointerp.explainers.enrichment import EnrichmentExplainer, enrichment_table
from autointerp.explainers.llm import LLMEvidenceExplainer, LLMExplainer
from autointerp.explainers.vision import VisionExplainer

__all__ = ["EXPLAINERS", "EnrichmentExplainer", "ExplainContext", "Explainer", "Explanation",
           "LLMEvidenceExplainer", "LLMExplainer", "VisionExplainer", "enrichment_table"]
