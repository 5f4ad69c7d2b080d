"""Report quality: generate a findings report per study, label it, score it against the
planted labels.

Positive = label 1 or -1 (a hedged mention counts: CheXpert's "U-ones" policy), on both
sides; an observation the report does not mention counts as negative. Per-finding F1 is over
all studies; ``macro_f1`` averages it over the findings the model was trained on.

``radinterp eval-reports --model demo --data DIR --out OUT`` writes
``OUT/report_quality.json`` (scores, config, timing, and every generated report beside the
reference) and ``OUT/reports.jsonl`` (one line per study).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import typer

from radinterp.cli import add_command
from radinterp.config import BaseConfig, write_json_atomic
from radinterp.labels import agreement, is_positive, label_report
from radinterp.metrics import confusion_counts, mean_defined, precision_recall_f1

log = logging.getLogger(__name__)

RESULT_FILE = "report_quality.json"
REPORTS_FILE = "reports.jsonl"


def default_findings() -> list[str]:
    """Report labels of every phantom finding (the demo model is trained on all of them)."""
    from radinterp.data.phantoms.config import FINDING_ORDER
    from radinterp.data.phantoms.findings import finding_label

    return [finding_label(f) for f in FINDING_ORDER]


@dataclass
class ReportQualityConfig(BaseConfig):
    """What to evaluate and how to generate."""

    model: str = "demo"
    """Adapter name (``demo``, ``tiny``, ...) or model folder."""
    data: str = ""
    """Phantom folder (``radinterp phantoms --out DIR``)."""
    out: str = ""
    """Output folder for ``report_quality.json``."""
    limit: int | None = None
    """Evaluate only the first ``limit`` studies."""
    batch_size: int = 8
    """Studies per generate call (left-padded)."""
    max_new_tokens: int | None = None
    """Generation length; default: longest reference report in tokens + 16."""
    findings: list[str] = field(default_factory=default_findings)
    """Label names scored (device subtypes or CheXpert observations)."""
    dtype: str = "float32"
    """Model dtype: float32 or bfloat16 (faster on CPUs with AMX)."""
    progress: bool = True
    """Show a progress bar."""

    def __post_init__(self) -> None:
        if not self.data or not self.out:
            raise ValueError("pass both data (a phantom folder) and out (an output folder)")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or None, got {self.limit}")
        if self.dtype not in ("float32", "bfloat16"):
            raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {self.dtype!r}")
        if not self.findings:
            raise ValueError("findings must name at least one label, e.g. Cardiomegaly")


def score_labels(
    pred: list[dict[str, int]], true: list[dict[str, int]], findings: list[str]
) -> dict[str, Any]:
    """Per-finding precision / recall / F1 (positive = 1 or -1) and their macro average; a
    metric that is undefined on these studies is None (:mod:`radinterp.metrics`) and left out
    of the average."""
    if len(pred) != len(true):
        raise ValueError(f"{len(pred)} predictions for {len(true)} references; align them by study")
    per: dict[str, dict[str, Any]] = {}
    for name in findings:
        y = np.array([is_positive(t, name) for t in true], dtype=bool)
        p = np.array([is_positive(q, name) for q in pred], dtype=bool)
        prec, rec, f1 = precision_recall_f1(*confusion_counts(y, p))
        per[name] = {"f1": f1, "precision": prec, "recall": rec, "n_true": int(y.sum()),
                     "n_pred": int(p.sum()), "accuracy": float((y == p).mean()) if len(y) else None}
    scored = [v["f1"] for v in per.values() if v["f1"] is not None]
    return {"macro_f1": mean_defined(scored), "per_finding": per, "n_findings_scored": len(scored)}


def _max_new_tokens(tokenizer, studies) -> int:
    lens = [len(tokenizer(s.report or "", add_special_tokens=False)["input_ids"]) for s in studies]
    return max(lens, default=64) + 16


def generate_reports(adapter, studies, batch_size: int, max_new_tokens: int, progress: bool) -> list[str]:
    """Greedy report per study, ``batch_size`` studies per generate call (stripped text)."""
    from radinterp.generation import DecodeConfig, generate

    gen = generate(adapter, studies, DecodeConfig(max_new_tokens=max_new_tokens), batch_size=batch_size,
                   progress=progress)
    return [t.strip() for t in gen.texts]


def evaluate_reports(cfg: ReportQualityConfig, adapter=None) -> dict[str, Any]:
    """Generate, label, score; write the result files; returns the result dict."""
    import torch

    from radinterp.data.phantoms.writer import load_phantom_studies
    from radinterp.models import load_adapter

    studies = load_phantom_studies(cfg.data)[: cfg.limit]
    if not studies:
        raise ValueError(f"{cfg.data} holds no studies; generate some: radinterp phantoms --out {cfg.data}")
    t0 = time.time()
    if adapter is None:
        adapter = load_adapter(cfg.model, dtype=getattr(torch, cfg.dtype))
    load_s = time.time() - t0
    max_new = cfg.max_new_tokens or _max_new_tokens(adapter.tokenizer, studies)
    t1 = time.time()
    generated = generate_reports(adapter, studies, cfg.batch_size, max_new, cfg.progress)
    gen_s = time.time() - t1
    pred = [label_report(g) for g in generated]
    true = [dict(s.labels) for s in studies]
    scores = score_labels(pred, true, cfg.findings)
    result = {
        **scores,
        "policy": "positive = label 1 or -1 on both sides; unmentioned = negative",
        "labeler_agreement": agreement(pred, true, cfg.findings),
        "n_studies": len(studies),
        "model": adapter.describe(),
        "config": cfg.to_dict(),
        "max_new_tokens": max_new,
        "timing": {"load_s": load_s, "generate_s": gen_s, "s_per_study": gen_s / len(studies)},
        "reports": [
            {"study_id": s.study_id, "generated": g, "reference": s.report, "pred_labels": p,
             "true_labels": t}
            for s, g, p, t in zip(studies, generated, pred, true)
        ],
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / RESULT_FILE, result)
    with open(out / REPORTS_FILE, "w") as fh:
        for r in result["reports"]:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    log.info("report quality on %d studies: macro-F1 %s (%.1f s/study)", len(studies),
             f"{scores['macro_f1']:.3f}" if scores["macro_f1"] is not None else "n/a",
             gen_s / len(studies))
    return result


def format_table(result: dict[str, Any]) -> str:
    """Markdown table of per-finding F1."""
    rows = ["| finding | F1 | precision | recall | n true | n pred |", "|---|---|---|---|---|---|"]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for name, v in result["per_finding"].items():
        rows.append(f"| {name} | {fmt(v['f1'])} | {fmt(v['precision'])} | {fmt(v['recall'])} | "
                    f"{v['n_true']} | {v['n_pred']} |")
    rows.append(f"| **macro** | **{fmt(result['macro_f1'])}** | | | | |")
    return "\n".join(rows)


def register(app: typer.Typer) -> None:
    def eval_reports(
        model: str = typer.Option("demo", help="Adapter name or model folder."),
        data: Path = typer.Option(..., help="Phantom folder to evaluate on."),
        out: Path = typer.Option(..., help="Output folder (report_quality.json)."),
        limit: int = typer.Option(None, help="Only the first N studies."),
        batch_size: int = typer.Option(8, help="Studies per generate call."),
        max_new_tokens: int = typer.Option(None, help="Default: longest reference + 16 tokens."),
        dtype: str = typer.Option("float32", help="float32 or bfloat16."),
        threads: int = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
        progress: bool = typer.Option(True, help="Show a progress bar."),
    ) -> None:
        """Generate reports, label them, and score them against the planted labels."""
        if threads:
            import torch

            torch.set_num_threads(threads)
        cfg = ReportQualityConfig(model=model, data=str(data), out=str(out), limit=limit,
                                  batch_size=batch_size, max_new_tokens=max_new_tokens,
                                  dtype=dtype, progress=progress)
        result = evaluate_reports(cfg)
        typer.echo(format_table(result))
        typer.echo(f"wrote {Path(out) / RESULT_FILE}")

    add_command(app, "eval-reports", eval_reports)
