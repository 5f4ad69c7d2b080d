"""Adapters for MAIRA-2 (the real checkpoint) and ``tiny`` (MAIRA-2-shaped, random weights)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from radinterp.models.arch import (
    MAIRA2_COORD_TOKENS,
    MAIRA2_SPECIAL_TOKENS,
    TINY_SCALE,
    Maira2LikeForConditionalGeneration,
    Maira2Scale,
    maira2_config,
)
from radinterp.models.base import ADAPTERS, Adapter
from radinterp.models.image import ImagePreprocess

log = logging.getLogger(__name__)

MAIRA2_HUB_ID = "microsoft/maira-2"
QUANTIZATIONS = ("8bit", "4bit")


def _bnb_config(quantization: str | None):
    if quantization is None:
        return None
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS} or None, got {quantization!r}")
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"{quantization} loading needs a CUDA GPU and bitsandbytes; on CPU load without "
            "quantization (drop --quantization)"
        )
    try:
        from transformers import BitsAndBytesConfig
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise ImportError("quantised loading needs bitsandbytes: pip install 'radinterp[gpu]'") from exc
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)


def _read_local_config(path: str) -> dict | None:
    cfg = Path(path) / "config.json"
    return json.loads(cfg.read_text()) if cfg.exists() else None


@ADAPTERS.register("maira2")
class Maira2Adapter(Adapter):
    """``microsoft/maira-2`` (Hub id or local folder), or any folder of the same architecture."""

    name = "maira2"

    @classmethod
    def load(
        cls,
        path: str | None = None,
        *,
        trust_remote_code: bool = False,
        quantization: str | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        image_size: int = 518,
    ) -> Maira2Adapter:
        path = path or MAIRA2_HUB_ID
        local = _read_local_config(path)
        bnb = _bnb_config(quantization)
        kwargs: dict = {"dtype": dtype or torch.float32}
        if bnb is not None:
            kwargs["quantization_config"] = bnb
            kwargs["device_map"] = "auto"
        if local is not None and "auto_map" not in local:
            # a folder of our own MAIRA-2-shaped class: no remote code involved
            from transformers import AutoTokenizer

            model = Maira2LikeForConditionalGeneration.from_pretrained(path, **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(path)
        else:
            if not trust_remote_code:
                raise ValueError(
                    f"{path} ships its model code with the checkpoint and loading it executes that "
                    "code; pass trust_remote_code=True (CLI: --trust-remote-code) if you trust it"
                )
            from transformers import AutoModelForCausalLM, AutoProcessor

            model = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True, **kwargs)
            tokenizer = AutoProcessor.from_pretrained(path, trust_remote_code=True).tokenizer
        if device and bnb is None:
            model = model.to(device)
        model.eval()
        patch = int(model.config.vision_config.patch_size)
        adapter = cls(model, tokenizer, ImagePreprocess(size=image_size), patch)
        adapter.prompt_style = "chat_template" if getattr(tokenizer, "chat_template", None) else "vicuna"
        return adapter


def tiny_tokenizer():
    """SmolLM2's real tokenizer with MAIRA-2's special and coordinate tokens added."""
    from radinterp.assets import load_smollm2_tokenizer

    tok = load_smollm2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": list(MAIRA2_SPECIAL_TOKENS)})
    tok.add_tokens(MAIRA2_COORD_TOKENS)
    return tok


@ADAPTERS.register("tiny")
class TinyAdapter(Maira2Adapter):
    """MAIRA-2-shaped model built in memory from a scaled-down MAIRA-2 config (random weights)."""

    name = "tiny"

    @classmethod
    def load(
        cls,
        path: str | None = None,
        *,
        image_size: int = 518,
        seed: int = 0,
        text_layers: int = 4,
        device: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> TinyAdapter:
        if path:
            return super().load(path, image_size=image_size, device=device, dtype=dtype)  # type: ignore[return-value]
        tok = tiny_tokenizer()
        scale = Maira2Scale(
            **{**TINY_SCALE, "text_layers": text_layers},
            image_size=image_size,
            vocab_size=len(tok),
            image_token_id=tok.convert_tokens_to_ids("<image>"),
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        torch.manual_seed(seed)
        model = Maira2LikeForConditionalGeneration(maira2_config(scale)).eval()
        if dtype is not None:
            model = model.to(dtype)
        if device:
            model = model.to(device)
        return cls(model, tok, ImagePreprocess(size=image_size), scale.patch_size)
