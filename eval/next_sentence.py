"""What would the model write next? Sample the next report sentence many times and label it.

Greedy decoding shows one sentence per slot; the probability behind it is spread over
wordings ("Moderate right pneumothorax is present.", "There is a small left apicolateral
pneumothorax.", ...) while a negative mostly starts with "No" or skips the finding. Sampling
the next sentence ``n`` times after a fixed start of the answer gives the model's own
probability that it states each finding there::

    radinterp next-sentence --data PHANTOMS --study ph0003-000063 \\
        --prefix "No pulmonary edema. The heart is not enlarged." --finding Fracture --n 100

``--indication`` replaces the study's indication, to ask whether the model reads it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import typer

from radinterp.cli import add_command
from radinterp.config import BaseConfig
from radinterp.labels import is_positive, label_report, positive_labels, sentence_spans

log = logging.getLogger(__name__)

CHUNK = 50
"""Samples per generate call: bounds the key/value cache (it grows with samples x length)."""
END = "<end>"
"""What a sample is recorded as when the model ends the report instead of writing a sentence."""


@dataclass
class NextSentenceConfig(BaseConfig):
    """Which study, which start of the answer, how many samples."""

    data: str = ""
    """Study folder (phantoms, or any source ``open_studies`` reads)."""
    study: str = ""
    """Study id."""
    prefix: str = ""
    """Start of the answer (whole sentences); empty: the first sentence of the report."""
    model: str = "demo"
    """Adapter name or model folder."""
    n: int = 100
    """Samples."""
    temperature: float = 1.0
    """Sampling temperature (1: the model's own distribution)."""
    seed: int = 0
    """Seed of the sampler."""
    max_new_tokens: int = 40
    """Tokens per sample (a report sentence is rarely longer than 30)."""
    indication: str | None = None
    """Replace the study's indication with this text."""
    findings: list[str] = field(default_factory=list)
    """Labels to report the share of; empty: every label any sample states."""
    dtype: str = "float32"
    """Model dtype: float32 or bfloat16."""

    def __post_init__(self) -> None:
        if not self.data or not self.study:
            raise ValueError("pass data (a study folder) and study (a study id in it)")
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (1 samples the model's distribution), "
                             f"got {self.temperature}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")


def first_sentence(text: str) -> str:
    """The first sentence of a sampled continuation (``END`` when there is none)."""
    spans = sentence_spans(text)
    return text[spans[0][0] : spans[0][1]] if spans else END


def answer_inputs(adapter, study, prefix: str):
    """Model inputs that end with ``prefix`` as the start of the answer (nothing closes it)."""
    from radinterp.models.tokens import TokenKind

    prefix = prefix.strip()
    if not prefix:
        return adapter.build_inputs(study)
    inputs = adapter.build_inputs(dataclasses.replace(study, report=prefix), with_report=True)
    cut = int((inputs.layout.kind == TokenKind.REPORT).nonzero()[0].max()) + 1  # drop end-of-sequence
    return inputs.head(cut)


def sample_next_sentences(adapter, study, prefix: str, n: int, *, temperature: float = 1.0,
                          seed: int = 0, max_new_tokens: int = 40) -> list[str]:
    """``n`` sampled first sentences after ``prefix`` (the start of the answer)."""
    from radinterp.generation import DecodeConfig, generate

    decode = DecodeConfig(max_new_tokens=max_new_tokens, do_sample=True, temperature=temperature,
                          num_return_sequences=n, seed=seed)
    gen = generate(adapter, [answer_inputs(adapter, study, prefix)], decode, samples_per_call=CHUNK)
    return [first_sentence(t) for t in gen.texts]


def summarize(sentences: list[str], findings: list[str] | None = None, top: int = 10) -> dict[str, Any]:
    """Share of samples stating each finding (label 1 or -1, as eval-reports counts), and the
    commonest sentences."""
    labels = [label_report(s) if s != END else {} for s in sentences]
    names = findings or sorted({k for lab in labels for k in positive_labels(lab)} - {"No Finding"})
    n = len(sentences)
    return {
        "n": n,
        "states": {f: sum(is_positive(lab, f) for lab in labels) / n for f in names},
        "ends_report": sum(s == END for s in sentences) / n,
        "top": Counter(sentences).most_common(top),
    }


def run(cfg: NextSentenceConfig, adapter=None) -> dict[str, Any]:
    import torch

    from radinterp.data.sources import open_studies
    from radinterp.models import load_adapter

    studies = {s.study_id: s for s in open_studies(cfg.data)}
    if cfg.study not in studies:
        some = ", ".join(list(studies)[:5])
        raise ValueError(f"no study {cfg.study!r} in {cfg.data}; its ids look like: {some}")
    study = studies[cfg.study]
    if cfg.indication is not None:
        study = dataclasses.replace(study, indication=cfg.indication)
    adapter = adapter or load_adapter(cfg.model, dtype=getattr(torch, cfg.dtype))
    sentences = sample_next_sentences(adapter, study, cfg.prefix, cfg.n, temperature=cfg.temperature,
                                      seed=cfg.seed, max_new_tokens=cfg.max_new_tokens)
    return {"study": cfg.study, "indication": study.indication, "prefix": cfg.prefix,
            **summarize(sentences, cfg.findings or None), "config": cfg.to_dict()}


def register(app: typer.Typer) -> None:
    def next_sentence(
        data: str = typer.Option(..., help="Study folder."),
        study: str = typer.Option(..., help="Study id."),
        prefix: str = typer.Option("", help="Start of the answer (whole sentences)."),
        finding: list[str] = typer.Option(None, help="Label to report (repeatable; default: all stated)."),
        model: str = typer.Option("demo", help="Adapter name or model folder."),
        n: int = typer.Option(100, help="Samples."),
        temperature: float = typer.Option(1.0, help="Sampling temperature."),
        seed: int = typer.Option(0, help="Sampler seed."),
        indication: str = typer.Option(None, help="Replace the study's indication."),
        dtype: str = typer.Option("float32", help="float32 or bfloat16."),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ) -> None:
        """Sample the next report sentence N times; print how often it states each finding."""
        res = run(NextSentenceConfig(data=data, study=study, prefix=prefix, model=model, n=n,
                                     temperature=temperature, seed=seed, indication=indication,
                                     findings=list(finding or []), dtype=dtype))
        if json_out:
            typer.echo(json.dumps(res, indent=2))
            return
        typer.echo(f"{res['study']} (indication {res['indication']!r}), {res['n']} samples:")
        for f, share in res["states"].items():
            typer.echo(f"  states {f}: {share:.2f}")
        typer.echo(f"  ends the report: {res['ends_report']:.2f}")
        for s, c in res["top"]:
            typer.echo(f"  {c:4d}  {s}")

    add_command(app, "next-sentence", next_sentence)
