"""Model adapters: one per architecture family, mapping canonical sites onto HF modules and
knowing the prompt format and token layout."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from radinterp.data.study import Study
from radinterp.models.image import ImagePreprocess, preprocess_image
from radinterp.models.prompt import RENDERERS, EncodedPrompt, encode_segments, maira2_user_segments
from radinterp.models.sites import Site, parse_site
from radinterp.models.tokens import ImageSlot, TokenKind, TokenLayout
from radinterp.registry import Registry

ADAPTERS: Registry[type["Adapter"]] = Registry("model adapter")


@dataclass
class ModelInputs:
    """One study, ready for the model."""

    study_id: str
    input_ids: torch.Tensor  # (T,) long
    pixel_values: torch.Tensor | None  # (n_images, C, H, W)
    layout: TokenLayout
    n_prompt: int
    """Positions before the report (generation starts here)."""
    text: str = ""

    def head(self, end: int) -> ModelInputs:
        """These inputs cut after position ``end - 1`` (a prompt prefix, an open answer). Images
        whose tokens all fall after the cut are dropped from ``pixel_values`` (images are in
        prompt order); a cut through an image's tokens is refused."""
        pixels = self.pixel_values
        if pixels is not None:
            img = self.layout.kind == int(TokenKind.IMAGE)
            slot = self.layout.image_slot
            first = img & np.concatenate([[True], ~img[:-1] | (slot[1:] != slot[:-1])])
            starts = np.flatnonzero(first)
            ends = np.append(starts[1:], len(img))
            for s, e in zip(starts, ends, strict=True):
                last = s + int(np.argmin(img[s:e])) if not img[s:e].all() else e
                if s < end < last:
                    raise ValueError(f"study {self.study_id!r}: a cut at {end} splits the image "
                                     f"tokens {s}..{last - 1}; cut before or after an image")
            pixels = pixels[: int((starts < end).sum())]
        return dataclasses.replace(self, input_ids=self.input_ids[:end], layout=self.layout.head(end),
                                   pixel_values=pixels, n_prompt=min(self.n_prompt, end))


@dataclass
class Batch:
    """Padded batch of studies; ``layouts[b]`` tags the first ``lengths[b]`` positions of row b."""

    study_ids: list[str]
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    pixel_values: torch.Tensor | None  # (N_images, C, H, W)
    layouts: list[TokenLayout]
    lengths: list[int]
    offsets: list[int] = field(default_factory=list)
    """Start column of each row's tokens (non-zero with left padding)."""

    def model_kwargs(self) -> dict:
        kw = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.pixel_values is not None:
            kw["pixel_values"] = self.pixel_values
        return kw


def _get_path(root: nn.Module, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


class Adapter(ABC):
    """Wraps a loaded model + tokenizer. Subclasses set the candidate module paths."""

    name: ClassVar[str] = ""
    LM_LAYERS: ClassVar[tuple[str, ...]] = (
        "model.language_model.layers",  # transformers >= 4.52 LLaVA layout
        "language_model.model.layers",  # older layout (MAIRA-2 remote code on 4.46)
        "model.layers",
    )
    VISION_BLOCKS: ClassVar[tuple[str, ...]] = (
        "model.vision_tower.encoder.layer",  # DINOv2
        "vision_tower.encoder.layer",
        "model.vision_tower.encoder.layers",  # CLIP in transformers 5
        "vision_tower.encoder.layers",
        "model.vision_tower.vision_model.encoder.layers",  # CLIP / SigLIP
        "vision_tower.vision_model.encoder.layers",
    )
    PROJECTOR: ClassVar[tuple[str, ...]] = ("model.multi_modal_projector", "multi_modal_projector")
    prompt_style: str = "vicuna"
    image_token: str = "<image>"

    def __init__(self, model: nn.Module, tokenizer, image_cfg: ImagePreprocess, patch_size: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.image_cfg = image_cfg
        self.patch_size = patch_size
        if image_cfg.size % patch_size:
            raise ValueError(f"image size {image_cfg.size} is not a multiple of patch size {patch_size}")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        if self.image_token_id is None or self.image_token_id == tokenizer.unk_token_id:
            raise ValueError(f"tokenizer has no {self.image_token!r} token; add it as a special token")

    # ------------------------------------------------------------ loading
    @classmethod
    @abstractmethod
    def load(cls, path: str | None = None, **kwargs) -> Adapter:
        """Load model and tokenizer; ``path`` is a Hub id or local folder where relevant."""

    # ------------------------------------------------------------ geometry
    @property
    def n_patches_side(self) -> int:
        return self.image_cfg.size // self.patch_size

    @property
    def n_image_tokens(self) -> int:
        return self.n_patches_side**2

    def patch_geometry(self, image):
        """``PatchGeometry`` of ``image`` (path, PIL, (H, W) array or (W, H) size) for this
        adapter: patch (row, col) <-> box in the original pixels, masks -> patch fractions."""
        from radinterp.models.geometry import PatchGeometry

        if getattr(self, "image_processor", None) is not None:
            raise ValueError(f"{self.name} preprocesses with its checkpoint's own image processor, "
                             "whose resize / crop PatchGeometry does not model; build "
                             "PatchGeometry(width, height, size, patch_size) only for "
                             "MAIRA-2-style preprocessing (radinterp.models.image)")
        return PatchGeometry.of(image, self.image_cfg.size, self.patch_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _find(self, candidates: tuple[str, ...], what: str):
        for path in candidates:
            obj = _get_path(self.model, path)
            if obj is not None:
                return obj
        raise ValueError(f"{type(self.model).__name__} has no {what} at any of {candidates}")

    def lm_layers(self) -> nn.ModuleList:
        return self._find(self.LM_LAYERS, "language-model layers")

    def vision_blocks(self) -> nn.ModuleList:
        return self._find(self.VISION_BLOCKS, "vision blocks")

    def projector(self) -> nn.Module:
        return self._find(self.PROJECTOR, "multimodal projector")

    @property
    def n_layers(self) -> int:
        return len(self.lm_layers())

    @property
    def d_model(self) -> int:
        return int(self.model.config.text_config.hidden_size)

    def site_dim(self, site: str) -> int:
        s = parse_site(site)
        if s.family == "vision_block":
            return int(self.model.config.vision_config.hidden_size)
        return self.d_model

    def resolve(self, site: str | Site) -> tuple[nn.Module, str]:
        """Module for a canonical site and whether to hook its input ('pre') or output ('post')."""
        s = parse_site(site) if isinstance(site, str) else site
        if s.family == "projector":
            return self.projector(), "post"
        blocks = self.vision_blocks() if s.family == "vision_block" else self.lm_layers()
        assert s.layer is not None
        if not 0 <= s.layer < len(blocks):
            what = "vision" if s.family == "vision_block" else "language-model"
            raise ValueError(
                f"site {s.name!r}: the model has {len(blocks)} {what} blocks; "
                f"use a layer index in 0..{len(blocks) - 1}"
            )
        return blocks[s.layer], ("pre" if s.family == "lm_resid_pre" else "post")

    # ------------------------------------------------------------ inputs
    def user_segments(self, study: Study, grounded: bool = False):
        return maira2_user_segments(study, self.image_token, grounded=grounded)

    def images_of(self, study: Study) -> list:
        return [im for im in (study.frontal, study.lateral, study.prior_frontal) if im is not None]

    def encode_prompt(self, study: Study, *, with_report: bool = False, grounded: bool = False) -> EncodedPrompt:
        if with_report and not study.report:
            raise ValueError(
                f"study {study.study_id!r} has no report text; pass with_report=False to build the "
                "generation prompt only"
            )
        renderer = RENDERERS.get(self.prompt_style)
        segs = renderer(self.tokenizer, self.user_segments(study, grounded), study.report if with_report else None)
        return encode_segments(
            self.tokenizer, segs, image_token_id=self.image_token_id, n_patches_side=self.n_patches_side
        )

    def build_inputs(self, study: Study, *, with_report: bool = False, grounded: bool = False) -> ModelInputs:
        """Tokens, pixels and token kinds of one study."""
        enc = self.encode_prompt(study, with_report=with_report, grounded=grounded)
        images = self.images_of(study)
        pixels = torch.stack([preprocess_image(im, self.image_cfg) for im in images]) if images else None
        return ModelInputs(
            study.study_id, torch.tensor(enc.input_ids, dtype=torch.long), pixels, enc.layout, enc.n_prompt, enc.text
        )

    def collate(self, items: list[ModelInputs], padding_side: str = "right") -> Batch:
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        T = max(len(it.input_ids) for it in items)
        pad = self.tokenizer.pad_token_id
        pad = 0 if pad is None else pad
        ids = torch.full((len(items), T), pad, dtype=torch.long)
        mask = torch.zeros((len(items), T), dtype=torch.long)
        offsets = []
        for b, it in enumerate(items):
            n = len(it.input_ids)
            o = T - n if padding_side == "left" else 0
            ids[b, o : o + n], mask[b, o : o + n] = it.input_ids, 1
            offsets.append(o)
        pix = [it.pixel_values for it in items if it.pixel_values is not None]
        return Batch(
            [it.study_id for it in items], ids, mask, torch.cat(pix) if pix else None,
            [it.layout for it in items], [len(it.input_ids) for it in items], offsets,
        )

    def to_device(self, batch: Batch) -> dict:
        dtype = next(self.model.parameters()).dtype
        kw = {k: v.to(self.device) for k, v in batch.model_kwargs().items()}
        if "pixel_values" in kw:
            kw["pixel_values"] = kw["pixel_values"].to(dtype)
        return kw

    # ------------------------------------------------------------ generation
    def generate(self, studies: list[Study], *, max_new_tokens: int = 128, **decode) -> list[str]:
        """Report text per study (per sampled sequence), stripped; greedy unless ``decode`` says
        otherwise (``DecodeConfig`` fields: do_sample, temperature, top_k, top_p,
        num_return_sequences, seed). Ids and layouts: :func:`radinterp.generation.generate`."""
        from radinterp.generation import DecodeConfig, generate

        cfg = DecodeConfig.from_dict({"max_new_tokens": max_new_tokens, **decode})
        return [t.strip() for t in generate(self, studies, cfg).texts]

    # ------------------------------------------------------------ helpers
    def describe(self) -> dict:
        return {
            "adapter": self.name,
            "model_class": type(self.model).__name__,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "image_size": self.image_cfg.size,
            "patch_size": self.patch_size,
            "image_tokens_per_image": self.n_image_tokens,
        }


__all__ = ["ADAPTERS", "Adapter", "Batch", "ModelInputs", "ImageSlot"]
