"""``vision``: the ``llm`` recipe with the radiographs themselves, for endpoints that take
images.

Each shown activating example that fires on frontal image patches is sent as an image content
part (OpenAI's ``image_url`` with a base64 PNG data URL): the latent's patch activations drawn
over the radiograph (``radinterp.overlay.overlay_image`` with the capture adapter's patch
geometry, as ``context.write_example_heatmap`` draws it), after a text part with the example's
rendering (marked report text, region phrase). Text-only examples go as text. A client that
cannot take images (``ChatClient.accepts_images`` false, e.g. ``local``) is refused before
any request, and a server that answers an image request with 400 / 415 / 422 gets a
``ValueError`` naming the fix, not a failed explanation per latent.
"""

from __future__ import annotations

import base64
import io

from autointerp.context import patch_heat, slot_image
from autointerp.explainers.base import EXPLAINERS, ExplainContext, Explanation
from autointerp.explainers.llm import LLMExplainer, need, spread
from autointerp.prompts import load_prompt
from autointerp.records import Example
from autointerp.sampling import LatentSample
from radinterp.models.tokens import ImageSlot
from radinterp.overlay import overlay_image

REFUSED_STATUS = (400, 415, 422)
"""HTTP statuses with which a text-only server refuses image content."""


def heatmap_data_url(ex: Example, study, adapter, **overlay) -> str:
    """``ex``'s frontal heatmap over the study's radiograph as a ``data:image/png;base64`` URL."""
    image = slot_image(study, ImageSlot.FRONTAL)
    geometry = adapter.patch_geometry(image)
    img = overlay_image(image, patch_heat(ex, geometry.n_side), geometry, **overlay)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def check_accepts_images(client, model: str | None = None) -> None:
    """Refuse a client that says it cannot take images, naming the fix."""
    if not getattr(client, "accepts_images", True):
        raise ValueError(f"the {type(client).__name__} ({model or 'its default model'}) takes "
                         "text only and the vision explainer sends images (fix: use --explainer "
                         "llm, or --client openai --base-url URL --model NAME of a vision model)")


@EXPLAINERS.register("vision")
class VisionExplainer(LLMExplainer):
    """See the module docstring."""

    name = "vision"

    def __init__(self, *, n_images: int = 4, **kw) -> None:
        super().__init__(**kw)
        self.n_images = n_images

    def messages(self, sample: LatentSample, ctx: ExplainContext) -> list[dict]:
        r = ctx.renderer
        if r.adapter is None:
            raise ValueError("the vision explainer draws heatmaps with the capture model's "
                             "patch geometry, but the store's model could not be loaded (fix: "
                             "use --explainer llm, or capture with a registered model)")
        shown = spread([ex for ex in sample.explain if ex.activation > 0], self.n_examples)
        parts: list[dict] = [{"type": "text",
                              "text": load_prompt("vision_user", self.prompt_dir).strip()}]
        n_img = 0
        for i, ex in enumerate(shown, 1):
            text = f"Example {i}: {r.describe(ex, values=self.show_values)}"
            parts.append({"type": "text", "text": text})
            if n_img < self.n_images and r.region(ex) is not None:
                url = heatmap_data_url(ex, r.studies[ex.study_id], r.adapter)
                parts.append({"type": "image_url", "image_url": {"url": url}})
                n_img += 1
        system = load_prompt("explain_system", self.prompt_dir).format(
            values_note=" and their activation values follow in brackets" if self.show_values
            else "")
        return [{"role": "system", "content": system.strip()}, {"role": "user", "content": parts}]

    async def aexplain(self, sample: LatentSample, ctx: ExplainContext) -> Explanation:
        from autointerp.clients.openai_client import LLMRequestError

        need(ctx, self.name)
        check_accepts_images(ctx.client)
        if not any(ex.activation > 0 for ex in sample.explain):
            return Explanation(sample.latent, self.name, "", ok=False,
                               error="no activating example in the explanation set")
        try:
            return await self.ask(sample, ctx, self.messages(sample, ctx))
        except LLMRequestError as e:
            if getattr(e.__cause__, "status_code", None) in REFUSED_STATUS:
                raise ValueError(f"the server refused the vision explainer's image request "
                                 f"({e.__cause__}); its model may take text only (fix: use "
                                 "--explainer llm, or --model NAME of a vision model)") from e
            raise


__all__ = ["REFUSED_STATUS", "VisionExplainer", "check_accepts_images", "heatmap_data_url"]
