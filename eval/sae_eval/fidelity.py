"""Fidelity with the model: splice an SAE's reconstruction in at its site and score the
next-token predictions on report tokens against the clean forward (SAELens ``run_evals``).

For every report token (a position whose next token is reference report text, fed
teacher-forced) we measure the cross-entropy of the next token and the KL divergence
``KL(clean || spliced)`` of the next-token distributions, for the clean model, the model with
the site replaced by ``decoder(encoder(h))`` at every position, and the model with the site
zero-ablated. SAELens's scores::

    ce_loss_score = (CE_zero - CE_sae) / (CE_zero - CE_clean)     # 1: as good as clean
    kl_score      = (KL_zero - KL_sae) / KL_zero

Cost. A language-model ``resid_post`` site is spliced without a second full forward: the clean
forward records the site's output and the keyword arguments its decoder layer received, and
only the layers after the site run again on the reconstruction (``suffix``); logits are taken
at report positions only. Zero-ablation is exact from a one-token forward: with every
position of the site equal to the same vector, causal softmax attention returns the same
value at every position and the rest of the network acts per position, so every position
gets the same next-token distribution. ``method="edit"`` runs full forwards through
:func:`radinterp.hooks.edit` instead (any site; the tests check that both agree).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from radinterp.hooks import edit
from radinterp.models.sites import parse_site
from radinterp.models.tokens import TokenKind

log = logging.getLogger(__name__)

Reconstruct = Callable[[torch.Tensor], torch.Tensor]
"""(..., d_in) -> (..., d_in): what is spliced in at the site."""

FINAL_NORM = ("model.language_model.norm", "language_model.model.norm", "model.norm")
"""Module paths of the language model's final norm (transformers >= 4.52 LLaVA, older, plain)."""


@dataclasses.dataclass
class FidelitySums:
    """Running sums over report tokens for the clean model and each spliced variant."""

    tokens: int = 0
    ce: dict[str, float] = dataclasses.field(default_factory=dict)
    kl: dict[str, float] = dataclasses.field(default_factory=dict)

    def add(self, name: str, ce: torch.Tensor, kl: torch.Tensor | None) -> None:
        self.ce[name] = self.ce.get(name, 0.0) + float(ce.double().sum())
        if kl is not None:
            self.kl[name] = self.kl.get(name, 0.0) + float(kl.double().sum())

    def result(self) -> dict[str, Any]:
        n = max(self.tokens, 1)
        ce = {k: v / n for k, v in self.ce.items()}
        kl = {k: v / n for k, v in self.kl.items()}
        out: dict[str, Any] = {"report_tokens": self.tokens, "ce_loss": ce, "kl": kl}
        gap = ce["zero_ablation"] - ce["clean"]
        out["ce_loss_score"] = {k: (ce["zero_ablation"] - ce[k]) / gap if gap else None
                                for k in ce if k not in ("clean", "zero_ablation")}
        out["kl_score"] = {k: (kl["zero_ablation"] - kl[k]) / kl["zero_ablation"]
                           if kl["zero_ablation"] else None for k in kl if k != "zero_ablation"}
        return out


def report_targets(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, positions, next-token ids) of every position whose next token is report text."""
    rows, pos = [], []
    for b, layout in enumerate(batch.layouts):
        nxt = torch.from_numpy(layout.kind[1:] == TokenKind.REPORT).nonzero().squeeze(1)  # (n,)
        off = batch.offsets[b] if batch.offsets else 0
        rows.append(torch.full_like(nxt, b))
        pos.append(nxt + off)
    r, p = torch.cat(rows), torch.cat(pos)
    return r, p, batch.input_ids[r, p + 1]


def _ce_kl(logits: torch.Tensor, targets: torch.Tensor, clean_lp: torch.Tensor | None):
    """Per-token CE (n,) and KL(clean || these) (n,) from logits (n or 1, V)."""
    lp = torch.log_softmax(logits.float(), dim=-1)
    lp = lp.expand(targets.shape[0], -1) if lp.shape[0] == 1 else lp  # (n, V)
    ce = -lp.gather(1, targets.unsqueeze(1)).squeeze(1)
    kl = None if clean_lp is None else (clean_lp.exp() * (clean_lp - lp)).sum(-1)
    return ce, kl


def _find(root: nn.Module, paths: Sequence[str]) -> nn.Module | None:
    for path in paths:
        obj: Any = root
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


@contextmanager
def _record_layer(layer: nn.Module, box: dict[str, Any]):
    """Record a decoder layer's keyword arguments and output during the forwards in the block."""
    def pre(mod, args, kwargs):
        box["kwargs"] = dict(kwargs)

    def post(mod, args, output):
        box["out"] = output[0] if isinstance(output, tuple) else output

    handles = [layer.register_forward_pre_hook(pre, with_kwargs=True), layer.register_forward_hook(post)]
    try:
        yield box
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _record_output(module: nn.Module, box: dict[str, Any], key: str):
    handle = module.register_forward_hook(lambda m, a, out: box.__setitem__(key, out))
    try:
        yield box
    finally:
        handle.remove()


class Splicer:
    """Runs clean and spliced forwards of batches and accumulates CE / KL on report tokens."""

    def __init__(self, adapter, site: str, variants: dict[str, Reconstruct], method: str = "auto") -> None:
        if method not in ("auto", "suffix", "edit"):
            raise ValueError(f"fidelity method must be auto, suffix or edit, got {method!r}")
        self.adapter, self.site, self.variants = adapter, site, variants
        parsed = parse_site(site)
        self.norm = _find(adapter.model, FINAL_NORM)
        self.head = adapter.model.get_output_embeddings()
        suffix_ok = parsed.family == "lm_resid_post" and self.norm is not None and self.head is not None
        if method == "suffix" and not suffix_ok:
            raise ValueError(f"the suffix method needs an lm.blocks.N.resid_post site and a final "
                             f"norm at one of {FINAL_NORM}; pass method='edit'")
        self.method = "suffix" if method in ("auto", "suffix") and suffix_ok else "edit"
        self.layer = parsed.layer
        self.sums = FidelitySums()
        self._zero_lp: torch.Tensor | None = None

    # -- zero ablation: one token --------------------------------------------------------
    @torch.inference_mode()
    def zero_logits(self) -> torch.Tensor:
        """(1, V) next-token logits with the site zero-ablated (position independent)."""
        if self._zero_lp is None:
            ids = torch.tensor([[self.adapter.tokenizer.bos_token_id or 0]], device=self.adapter.device)
            zero = {self.site: lambda h, ctx: torch.zeros_like(h)}
            with edit(self.adapter, zero):
                out = self.adapter.model(input_ids=ids, use_cache=False)
            self._zero_lp = out.logits[0, -1:].float()
        return self._zero_lp

    # -- one batch -------------------------------------------------------------------------
    @torch.inference_mode()
    def add_batch(self, batch) -> None:
        rows, pos, targets = report_targets(batch)
        if rows.numel() == 0:
            return
        kw = self.adapter.to_device(batch)
        dev = self.adapter.device
        rows, pos, targets = rows.to(dev), pos.to(dev), targets.to(dev)
        if self.method == "suffix":
            clean, spliced = self._suffix(kw, rows, pos)
        else:
            clean, spliced = self._edit(batch, kw, rows, pos)
        clean_lp = torch.log_softmax(clean.float(), dim=-1)  # (n, V)
        self.sums.tokens += int(targets.numel())
        self.sums.add("clean", *_ce_kl(clean, targets, None))
        self.sums.add("zero_ablation", *_ce_kl(self.zero_logits(), targets, clean_lp))
        for name, logits in spliced.items():
            self.sums.add(name, *_ce_kl(logits, targets, clean_lp))

    def _fewer_logits(self) -> dict[str, int]:
        """Ask the model for the last position's logits only (we take ours from the final norm)."""
        import inspect

        params = inspect.signature(self.adapter.model.forward).parameters
        for name in ("logits_to_keep", "num_logits_to_keep"):  # transformers >= 4.50, older
            if name in params:
                return {name: 1}
        return {}

    def _logits_at(self, h_final: torch.Tensor, rows: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        return self.head(h_final[rows, pos])  # (n, V)

    def _suffix(self, kw, rows, pos):
        layers = self.adapter.lm_layers()
        box: dict[str, Any] = {}
        with _record_layer(layers[self.layer], box), _record_output(self.norm, box, "final"):
            self.adapter.model(**kw, use_cache=False, **self._fewer_logits())
        clean = self._logits_at(box["final"], rows, pos)
        h = box["out"]  # (B, T, d_model) the site's clean output
        spliced = {}
        for name, fn in self.variants.items():
            x = fn(h.float()).to(h.dtype)  # (B, T, d_model)
            for layer in layers[self.layer + 1:]:
                x = layer(x, **box["kwargs"])
                x = x[0] if isinstance(x, tuple) else x
            spliced[name] = self._logits_at(self.norm(x), rows, pos)
        return clean, spliced

    def _edit(self, batch, kw, rows, pos):
        def run(edits):
            with edit(self.adapter, edits, batch=batch):
                out = self.adapter.model(**kw, use_cache=False)
            return out.logits[rows, pos]

        clean = run({})
        spliced = {name: run({self.site: lambda h, ctx, fn=fn: fn(h.float()).to(h.dtype)})
                   for name, fn in self.variants.items()}
        return clean, spliced


def measure_fidelity(adapter, site: str, studies: Iterable, variants: dict[str, Reconstruct], *,
                     batch_size: int = 4, method: str = "auto", progress: bool = True) -> dict[str, Any]:
    """CE loss / KL on report tokens of ``studies`` (with reports), clean vs each variant vs
    zero-ablation, and SAELens's CE-loss and KL scores per variant."""
    from tqdm.auto import tqdm

    studies = [s for s in studies if s.report]
    if not studies:
        raise ValueError("no study with report text to measure fidelity on; pass studies whose "
                         "report is set (the store's data), or --no-fidelity")
    splicer = Splicer(adapter, site, variants, method)
    for lo in tqdm(range(0, len(studies), batch_size), desc="fidelity", disable=not progress):
        items = [adapter.build_inputs(s, with_report=True) for s in studies[lo:lo + batch_size]]
        splicer.add_batch(adapter.collate(items, padding_side="right"))
    out = splicer.sums.result()
    out.update(method=splicer.method, studies=len(studies), site=site)
    return out


__all__ = ["FidelitySums", "Splicer", "measure_fidelity", "report_targets"]
