"""MAIRA-2's architecture on current transformers: LLaVA with a multi-layer projector.

``Maira2LikeForConditionalGeneration`` is ``LlavaForConditionalGeneration`` with the
projector MAIRA-2 uses (``projector_n_layers`` linear layers with GELU between them, as an
``nn.Sequential`` named ``layers`` so parameter names match the released checkpoint). The
``tiny`` adapter and GPU throughput checks build it from :func:`maira2_config` with a scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import Dinov2Config, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration
from transformers.activations import ACT2FN

# MAIRA-2's special tokens (ids in the released 32,207-token vocabulary).
MAIRA2_SPECIAL_TOKENS = {
    "<obj>": 32000,
    "</obj>": 32001,
    "<box>": 32202,
    "</box>": 32203,
    "<image>": 32204,
    "<lat_image>": 32206,
}
MAIRA2_COORD_TOKENS = [f"<x{i}>" for i in range(100)] + [f"<y{i}>" for i in range(100)]


class MultiLayerProjector(nn.Module):
    """vision_hidden -> text_hidden, then (act, text_hidden -> text_hidden) x (n_layers - 1)."""

    def __init__(self, config: LlavaConfig) -> None:
        super().__init__()
        n_layers = int(getattr(config, "projector_n_layers", 2))
        if n_layers < 1:
            raise ValueError(f"projector_n_layers must be >= 1, got {n_layers}")
        d_vis, d_txt = config.vision_config.hidden_size, config.text_config.hidden_size
        layers: list[nn.Module] = [nn.Linear(d_vis, d_txt, bias=True)]
        for _ in range(n_layers - 1):
            layers += [ACT2FN[config.projector_hidden_act], nn.Linear(d_txt, d_txt, bias=True)]
        self.layers = nn.Sequential(*layers)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:  # (N, P, d_vis) -> (N, P, d_txt)
        return self.layers(image_features)


class Maira2LikeForConditionalGeneration(LlavaForConditionalGeneration):
    """LLaVA with MAIRA-2's multi-layer projector."""

    def __init__(self, config: LlavaConfig) -> None:
        super().__init__(config)
        self.model.multi_modal_projector = MultiLayerProjector(config)
        self.post_init()


@dataclass(frozen=True)
class Maira2Scale:
    """Sizes of a MAIRA-2-shaped model; defaults are the real MAIRA-2."""

    vision_hidden: int = 768
    """RAD-DINO width (ViT-B)."""
    vision_layers: int = 12
    """RAD-DINO depth."""
    vision_heads: int = 12
    image_size: int = 518
    """Input side; 518 / 14 = 37 patches per side."""
    patch_size: int = 14
    text_hidden: int = 4096
    text_layers: int = 32
    text_heads: int = 32
    text_kv_heads: int = 32
    text_intermediate: int = 11008
    vocab_size: int = 32207
    projector_layers: int = 4
    rope_scaling: float = 1.5
    """Linear RoPE scaling factor."""
    image_token_id: int = MAIRA2_SPECIAL_TOKENS["<image>"]
    pad_token_id: int = 0
    bos_token_id: int = 1
    eos_token_id: int = 2

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )


TINY_SCALE = dict(
    vision_hidden=32, vision_layers=2, vision_heads=2, text_hidden=64, text_layers=4,
    text_heads=4, text_kv_heads=2, text_intermediate=128, projector_layers=4,
)


def dinov2_config(hidden: int, layers: int, heads: int, image_size: int, patch_size: int) -> Dinov2Config:
    """A DINOv2 vision tower (RAD-DINO's family) of the given size."""
    return Dinov2Config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        image_size=image_size,
        patch_size=patch_size,
        layerscale_value=1.0,
    )


def maira2_llava_config(vision: Dinov2Config, text, image_token_id: int, projector_layers: int) -> LlavaConfig:
    """MAIRA-2's LLaVA wiring (GELU multi-layer projector, CLS dropped, last vision layer)."""
    cfg = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        image_seq_length=(vision.image_size // vision.patch_size) ** 2,
    )
    cfg.projector_n_layers = projector_layers
    return cfg


def maira2_config(scale: Maira2Scale = Maira2Scale()) -> LlavaConfig:
    """A LlavaConfig of MAIRA-2's shape at the given scale."""
    vision = dinov2_config(scale.vision_hidden, scale.vision_layers, scale.vision_heads,
                           scale.image_size, scale.patch_size)
    text = LlamaConfig(
        hidden_size=scale.text_hidden,
        num_hidden_layers=scale.text_layers,
        num_attention_heads=scale.text_heads,
        num_key_value_heads=scale.text_kv_heads,
        intermediate_size=scale.text_intermediate,
        vocab_size=scale.vocab_size,
        max_position_embeddings=8192,
        rope_parameters={"rope_type": "linear", "factor": scale.rope_scaling, "rope_theta": 10000.0},
        pad_token_id=scale.pad_token_id,
        bos_token_id=scale.bos_token_id,
        eos_token_id=scale.eos_token_id,
        tie_word_embeddings=False,
    )
    return maira2_llava_config(vision, text, scale.image_token_id, scale.projector_layers)
