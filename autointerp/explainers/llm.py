"""``llm`` and ``llm-evidence``: delphi's explainer recipe through a chat client.

``llm`` shows the chat model up to ``n_examples`` activating examples of the explanation set,
spread over its activation range (strongest first), each as ``ExampleRenderer.describe``
gives it: the firing report tokens marked ``<<...>>`` in their sentences with their values
(``show_values``), the firing image region as a phrase, the report otherwise. The prompt
(``prompts/explain_system.txt``, ``prompts/explain_user.txt``) asks for one short phrase on a
final ``[EXPLANATION]: ...`` line; ``parse.parse_explanation`` reads it. A reply it cannot
read is a failed explanation (``ok=False``, the reply kept in ``evidence``), never scored.

``llm-evidence`` adds the ``enrichment`` explainer's table for the same explanation set
(``prompts/evidence.txt``): the labels, phrases and region over-represented where the latent
fires, with counts, so a small model can pick the finding rather than find it.
"""

from __future__ import annotations

import time

import numpy as np

from autointerp.explainers.base import EXPLAINERS, ExplainContext, Explainer, Explanation
from autointerp.explainers.enrichment import Enriched, EnrichmentExplainer
from autointerp.parse import UnparsableReply, parse_explanation
from autointerp.prompts import load_prompt
from autointerp.records import Example
from autointerp.sampling import LatentSample


def spread(examples: list[Example], n: int) -> list[Example]:
    """Up to ``n`` of ``examples`` evenly spaced over their activation order, strongest
    first (all of them when there are at most ``n``)."""
    ranked = sorted(examples, key=lambda ex: (-ex.activation, ex.study_id))
    if len(ranked) <= n:
        return ranked
    return [ranked[i] for i in np.unique(np.linspace(0, len(ranked) - 1, n).round().astype(int))]


def need(ctx: ExplainContext, what: str) -> None:
    """Refuse an LLM explainer run without a client or renderer (a programming slip)."""
    if ctx.client is None or ctx.renderer is None:
        raise ValueError(f"the {what} explainer needs ExplainContext(client=..., renderer=...); "
                         "run it through run_autointerp or pass both")


@EXPLAINERS.register("llm")
class LLMExplainer(Explainer):
    """See the module docstring."""

    name = "llm"
    needs_llm = True

    def __init__(self, *, n_examples: int = 10, show_values: bool = True,
                 prompt_dir: str | None = None) -> None:
        """``n_examples`` activating examples shown, ``show_values`` their activations beside
        the marked tokens, ``prompt_dir`` a folder of edited prompt files."""
        self.n_examples, self.show_values, self.prompt_dir = n_examples, show_values, prompt_dir

    def explain(self, sample: LatentSample, ctx: ExplainContext) -> Explanation:
        from autointerp.clients.base import run_sync

        return run_sync(self.aexplain(sample, ctx))

    def evidence_block(self, sample: LatentSample, ctx: ExplainContext) -> str:
        """Extra prompt text after the examples ('' for ``llm``)."""
        return ""

    def messages(self, sample: LatentSample, ctx: ExplainContext) -> list[dict]:
        """The chat request for ``sample`` (system + user message)."""
        shown = spread([ex for ex in sample.explain if ex.activation > 0], self.n_examples)
        examples = "\n\n".join(f"Example {i}: {ctx.renderer.describe(ex, values=self.show_values)}"
                               for i, ex in enumerate(shown, 1))
        note = " and their activation values follow in brackets" if self.show_values else ""
        system = load_prompt("explain_system", self.prompt_dir).format(values_note=note)
        user = load_prompt("explain_user", self.prompt_dir).format(
            examples=examples, evidence=self.evidence_block(sample, ctx))
        return [{"role": "system", "content": system.strip()},
                {"role": "user", "content": user.strip()}]

    async def aexplain(self, sample: LatentSample, ctx: ExplainContext) -> Explanation:
        need(ctx, self.name)
        if not any(ex.activation > 0 for ex in sample.explain):
            return Explanation(sample.latent, self.name, "", ok=False,
                               error="no activating example in the explanation set")
        return await self.ask(sample, ctx, self.messages(sample, ctx))

    async def ask(self, sample: LatentSample, ctx: ExplainContext, messages: list[dict]
                  ) -> Explanation:
        """Send ``messages``; parse the reply into an ``Explanation`` (failed if unparsable)."""
        t0 = time.perf_counter()
        reply = await ctx.client.chat(messages, max_tokens=ctx.max_tokens, temperature=0.0)
        evidence = {"reply": reply.text, "cached": reply.cached,
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "seconds": round(time.perf_counter() - t0, 3)}
        try:
            text = parse_explanation(reply.text)
        except UnparsableReply as e:
            return Explanation(sample.latent, self.name, "", ok=False,
                               error=f"unparsable reply: {e}", evidence=evidence)
        return Explanation(sample.latent, self.name, text, evidence=evidence)


@EXPLAINERS.register("llm-evidence")
class LLMEvidenceExplainer(LLMExplainer):
    """``llm`` plus the enrichment table (see the module docstring)."""

    name = "llm-evidence"

    def __init__(self, *, n_rows: int = 8, **kw) -> None:
        super().__init__(**kw)
        self.n_rows = n_rows
        self.enrichment = EnrichmentExplainer()

    def evidence_block(self, sample: LatentSample, ctx: ExplainContext) -> str:
        table = self.enrichment.explain(sample, ctx)
        if not table.ok:
            return ""
        ev = table.evidence
        rows = [Enriched(**d).words() for d in [*ev["labels"], *ev["phrases"]][: self.n_rows]]
        if ev.get("region"):
            rows.append(f"region {ev['region']} ({ev['regions'][ev['region']]} image examples)")
        lines = "\n".join(f"- {r}" for r in rows) or "- nothing over-represented"
        return load_prompt("evidence", self.prompt_dir).format(
            contrast=ev["contrast"].replace("/", " vs "), table=lines)


__all__ = ["LLMEvidenceExplainer", "LLMExplainer", "need", "spread"]
