"""Adapter for any HF ``LlavaForConditionalGeneration`` checkpoint."""

from __future__ import annotations

from typing import ClassVar

import torch

from radinterp.models.base import ADAPTERS, Adapter
from radinterp.models.image import ImagePreprocess, load_image, to_rgb


@ADAPTERS.register("llava")
class LlavaAdapter(Adapter):
    """Generic LLaVA: the checkpoint's own image processor and chat template."""

    name = "llava"
    refused_options: ClassVar[dict[str, str]] = {
        "image_size": "the checkpoint's own image processor sets the size",
    }
    """Why ``load_adapter`` refuses these options (names ``load`` does not take)."""

    def __init__(self, model, tokenizer, image_cfg, patch_size, image_processor=None) -> None:
        self.image_token = getattr(tokenizer, "image_token", None) or "<image>"
        super().__init__(model, tokenizer, image_cfg, patch_size)
        self.image_processor = image_processor

    @classmethod
    def load(cls, path: str | None = None, *, device: str | None = None, dtype=None) -> LlavaAdapter:
        if not path:
            raise ValueError("the llava adapter needs a checkpoint: pass a Hub id or local folder")
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        model = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype or torch.float32).eval()
        if device:
            model = model.to(device)
        processor = AutoProcessor.from_pretrained(path)
        vc = model.config.vision_config
        adapter = cls(model, processor.tokenizer, ImagePreprocess(size=int(vc.image_size)), int(vc.patch_size),
                      image_processor=processor.image_processor)
        adapter.prompt_style = "chat_template" if getattr(processor.tokenizer, "chat_template", None) else "vicuna"
        return adapter

    def build_inputs(self, study, *, with_report=False, grounded=False):
        inputs = super().build_inputs(study, with_report=with_report, grounded=grounded) if self.image_processor is None else None
        if inputs is not None:
            return inputs
        # use the checkpoint's own image processor (e.g. CLIP normalisation, RGB)
        from radinterp.models.base import ModelInputs

        enc = self.encode_prompt(study, with_report=with_report, grounded=grounded)
        images = [to_rgb(load_image(im)) for im in self.images_of(study)]
        pix = self.image_processor(images=images, return_tensors="pt")["pixel_values"] if images else None
        return ModelInputs(study.study_id, torch.tensor(enc.input_ids), pix, enc.layout, enc.n_prompt, enc.text)
