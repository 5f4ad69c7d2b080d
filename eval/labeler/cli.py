"""``radinterp label``: label report text and score it against reference labels."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import typer
from tqdm import tqdm

from radinterp.cli import add_command
from radinterp.config import write_json_atomic

log = logging.getLogger(__name__)


def read_report_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records ``{study_id, report, labels?}`` from a JSONL file or a phantom studies folder;
    malformed lines raise with their line number."""
    from radinterp.labels import ALL_LABELS

    src = path / "studies.jsonl" if path.is_dir() else path
    if not src.exists():
        raise FileNotFoundError(
            f"{src} not found; pass --data a phantom folder (with studies.jsonl) or a JSONL file "
            "of {\"study_id\", \"report\", \"labels\"?} objects"
        )
    recs, seen = [], set()
    for i, line in enumerate(src.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{src}:{i}: not valid JSON ({e.msg})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("report"), str) or \
                "study_id" not in obj:
            raise ValueError(f"{src}:{i}: each line needs 'study_id' and a string 'report'")
        sid = str(obj["study_id"])
        if sid in seen:
            raise ValueError(f"{src}:{i}: duplicate study_id {sid!r}")
        seen.add(sid)
        labels = obj.get("labels")
        if labels is not None:
            if not isinstance(labels, dict):
                raise ValueError(f"{src}:{i}: 'labels' must be an object {{observation: 1|0|-1}}")
            bad = sorted(set(labels) - set(ALL_LABELS))
            if bad:
                raise ValueError(f"{src}:{i}: unknown observation(s) {bad}; valid: "
                                 f"{', '.join(ALL_LABELS)}")
            if any(v not in (1, 0, -1) for v in labels.values()):
                raise ValueError(f"{src}:{i}: label values must be 1, 0 or -1 (omit blanks)")
        recs.append({"study_id": sid, "report": obj["report"], "labels": labels})
    return recs


def run_label(data: Path, out: Path, overwrite: bool = False, progress: bool = True) -> dict:
    """Label every report in ``data``; write ``labels.jsonl`` (+ ``agreement.json`` when
    references exist) under ``out``. Returns the agreement (or {})."""
    from radinterp.labels import Labeler, agreement

    recs = read_report_jsonl(data)
    labels_path = out / "labels.jsonl"
    cfg = {"data": str(Path(data).resolve()), "labeler": "rule-based-v1"}
    if labels_path.exists() and not overwrite:
        old = json.loads((out / "cfg.json").read_text()) if (out / "cfg.json").exists() else None
        if old != cfg:
            raise FileExistsError(f"{out} already holds labels of other data ({old}); pass "
                                  "--overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    labeler = Labeler()
    preds = [labeler.label(r["report"]) for r in tqdm(recs, desc="label", disable=not progress)]
    tmp = labels_path.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as fh:
        for r, p in zip(recs, preds):
            fh.write(json.dumps({"study_id": r["study_id"], "labels": p}, sort_keys=True) + "\n")
    tmp.replace(labels_path)
    write_json_atomic(out / "cfg.json", cfg)
    scored = [(p, r["labels"]) for p, r in zip(preds, recs) if r["labels"] is not None]
    if not scored:
        (out / "agreement.json").unlink(missing_ok=True)  # never leave a stale score behind
        return {}
    agr = agreement([p for p, _ in scored], [r for _, r in scored])
    write_json_atomic(out / "agreement.json", agr)
    log.info("labeled %d reports; macro-F1 %.4f on %d with references", len(recs),
             agr["macro_f1"] or 0.0, len(scored))
    return agr


def label(
    data: Path = typer.Option(..., "--data", help="Phantom folder or JSONL of reports."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace labels of other data."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Label reports (CheXpert 14 + device subtypes) and score against reference labels."""
    agr = run_label(data, out, overwrite=overwrite, progress=progress)
    if agr:
        typer.echo(f"macro_f1={agr['macro_f1']:.4f} macro_f1_3class={agr['macro_f1_3class']:.4f}"
                   f" over {agr['n_studies']} studies with references")


def register(app: typer.Typer) -> None:
    add_command(app, "label", label)
