"""One generation path for every caller (``Adapter.generate``, ``eval-reports``,
``next-sentence``, steering, capture of generated tokens).

    out = generate(adapter, studies, DecodeConfig(max_new_tokens=128))
    out.texts[i]; out.new_ids[i]      # (n_new,) through the end-of-sequence token
    out.layouts[i].kind               # prompt kinds, then GENERATED for each new token
    out.inputs()                      # prompt + generated ids as ModelInputs (teacher-forced pass)

Studies are left-padded per call (HF's position ids follow the attention mask, so every row
sees the positions it would see alone). ``edits`` run through :func:`radinterp.hooks.edit`
with the call's batch, so an edit can select image, prompt or generated positions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from radinterp.config import BaseConfig
from radinterp.data.study import Study
from radinterp.edits import EditFn
from radinterp.hooks import edit
from radinterp.models.tokens import TokenLayout

if TYPE_CHECKING:
    from radinterp.models.base import Adapter, ModelInputs

log = logging.getLogger(__name__)


def pad_token_id(tokenizer: Any) -> int:
    """The id generation pads finished sequences with: the pad token, else end-of-sequence."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an end-of-sequence token; "
                         "set tokenizer.pad_token before generating")
    return int(pad)


@dataclass
class DecodeConfig(BaseConfig):
    """How to decode; the same settings mean the same thing for every caller."""

    max_new_tokens: int = 128
    """Most tokens generated per sequence."""
    do_sample: bool = False
    """Sample (True) or decode greedily (False; the sampling fields are then unused)."""
    temperature: float = 1.0
    """Sampling temperature (1: the model's own distribution)."""
    top_k: int = 0
    """Sample only among the k likeliest tokens; 0 turns it off (the model's own distribution)."""
    top_p: float = 1.0
    """Nucleus sampling mass; 1.0 turns it off."""
    num_return_sequences: int = 1
    """Sequences per study (sampling only)."""
    seed: int | None = None
    """Seed torch's generator once before the first call; None leaves it as it is."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (1 samples the model's distribution), got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1] (1 = off), got {self.top_p}")
        if self.num_return_sequences < 1:
            raise ValueError(f"num_return_sequences must be >= 1, got {self.num_return_sequences}")
        if self.num_return_sequences > 1 and not self.do_sample:
            raise ValueError("greedy decoding returns one sequence per study; pass do_sample=True "
                             "to sample several, or num_return_sequences=1")

    def generate_kwargs(self, num_return_sequences: int) -> dict[str, Any]:
        """Keyword arguments for HF ``generate`` (sampling fields only when sampling)."""
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample,
                              "num_return_sequences": num_return_sequences}
        if self.do_sample:
            kw.update(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p)
        return kw


@dataclass
class Generation:
    """What came out, one entry per sequence: grouped by study in input order, then by sample."""

    prompts: list[ModelInputs]
    """The prompt each sequence continues (one study's repeated per returned sequence)."""
    new_ids: list[torch.Tensor]
    """(n_new,) long per sequence: the generated tokens, through the end-of-sequence token
    when the model wrote one (the padding after it is dropped)."""
    texts: list[str]
    """Decoded generated tokens (special tokens skipped, not stripped)."""
    layouts: list[TokenLayout]
    """Layout of every position of prompt + generated: the prompt's kinds, then GENERATED."""

    @property
    def study_ids(self) -> list[str]:
        return [p.study_id for p in self.prompts]

    def sequence_ids(self, i: int) -> torch.Tensor:
        """(len(prompt) + n_new,) long: prompt and generated ids of sequence ``i``."""
        return torch.cat([self.prompts[i].input_ids, self.new_ids[i]])

    def inputs(self) -> list[ModelInputs]:
        """Prompt + generated tokens as model inputs, for one teacher-forced pass over both."""
        return [dataclasses.replace(p, input_ids=self.sequence_ids(i), layout=self.layouts[i])
                for i, p in enumerate(self.prompts)]


def _stop_ids(adapter: Adapter) -> set[int]:
    """Token ids generation stops at (the generation config's, else the tokenizer's eos)."""
    eos = getattr(getattr(adapter.model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = adapter.tokenizer.eos_token_id
    return set() if eos is None else {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def _trim(ids: torch.Tensor, stop: set[int]) -> torch.Tensor:
    """(n,) -> the tokens through the first stop token (what follows it is padding)."""
    hits = torch.isin(ids, torch.tensor(sorted(stop), dtype=ids.dtype)).nonzero()
    return ids[: int(hits[0]) + 1] if len(hits) else ids


def _calls(n_items: int, batch_size: int, n_seq: int, per_call: int) -> list[tuple[int, int]]:
    """(first item, sequences per item) of each generate call, in call order."""
    chunks = [min(per_call, n_seq - s) for s in range(0, n_seq, per_call)]
    return [(i, k) for i in range(0, n_items, batch_size) for k in chunks]


@torch.no_grad()
def generate(
    adapter: Adapter,
    items: Sequence[Study | ModelInputs],
    decode: DecodeConfig | None = None,
    *,
    batch_size: int | None = None,
    samples_per_call: int | None = None,
    edits: dict[str, EditFn] | None = None,
    progress: bool = False,
) -> Generation:
    """Generate after each item's prompt (a Study's generation prompt, or prebuilt inputs such
    as a prompt ending in the start of an answer).

    ``batch_size``: items per ``generate`` call (default: all). ``samples_per_call``: returned
    sequences per item per call (default: all); bounds the key/value cache, which grows with
    sequences x length. The seed is set once, before the first call, so a result depends on
    these two only through the order of the calls. ``edits``: site -> ``fn(tensor, ctx)``.
    """
    decode = decode or DecodeConfig()
    prompts = [adapter.build_inputs(it) if isinstance(it, Study) else it for it in items]
    bad = [type(p).__name__ for p in prompts if not (hasattr(p, "input_ids") and hasattr(p, "layout"))]
    if bad:
        raise TypeError(f"generate takes Study or ModelInputs items, got {bad[0]}; build inputs with "
                        "adapter.build_inputs(study)")
    if not prompts:
        raise ValueError("nothing to generate from; pass at least one study")
    bs = batch_size or len(prompts)
    per_call = samples_per_call or decode.num_return_sequences
    if bs < 1 or per_call < 1:
        raise ValueError(f"batch_size and samples_per_call must be >= 1, got {bs} and {per_call}")
    pad, stop = pad_token_id(adapter.tokenizer), _stop_ids(adapter)
    if decode.seed is not None:
        torch.manual_seed(decode.seed)
    done: list[tuple[int, int, ModelInputs, torch.Tensor]] = []  # (item, call order, prompt, new ids)
    calls = _calls(len(prompts), bs, decode.num_return_sequences, per_call)
    for c, (start, k) in enumerate(tqdm(calls, desc="generate", unit="call", disable=not progress)):
        chunk = prompts[start : start + bs]
        batch = adapter.collate(chunk, padding_side="left")
        hooks = edit(adapter, edits, batch=batch, num_return_sequences=k) if edits else contextlib.nullcontext()
        with hooks:
            out = adapter.model.generate(**adapter.to_device(batch), **decode.generate_kwargs(k),
                                         pad_token_id=pad)  # (len(chunk) * k, T + n_new)
        new = out[:, batch.input_ids.shape[1] :].cpu()  # (len(chunk) * k, n_new)
        for r in range(new.shape[0]):
            done.append((start + r // k, c, chunk[r // k], _trim(new[r], stop)))
        log.debug("generate call %d of %d done", c + 1, len(calls))
    done.sort(key=lambda d: (d[0], d[1]))  # stable: by item, then call order
    new_ids = [d[3] for d in done]
    texts = adapter.tokenizer.batch_decode([ids.tolist() for ids in new_ids], skip_special_tokens=True)
    return Generation(
        prompts=[d[2] for d in done], new_ids=new_ids, texts=list(texts),
        layouts=[d[2].layout.with_generated(len(ids)) for d, ids in zip(done, new_ids)],
    )
