"""``run_autointerp``: records -> samples -> explanations -> scores, for the trained SAE and a
random baseline SAE of the same shape and sparsity, written line by line and resumable.

Outputs under ``cfg.out``:

- ``explanations.jsonl``: one row per (latent, explainer): ``latent``, ``explainer``,
  ``explanation``, ``ok``, ``error``, ``modality`` (mix), ``frequency``, ``evidence``, and the
  baseline's paired latent and explanation;
- ``scores.jsonl``: one row per (latent, explainer, scorer): ``score``, ``baseline`` (the same
  scorer on the paired random latent's explanation), ``details``;
- ``summary.json``: counts, mean score and baseline per scorer, and on phantom data
  ``planted: {n_matched, named_rate}`` (latents whose held-out AUROC for their best planted
  finding is >= ``MATCH_AUROC``, and the share of those the explanation names), for both SAEs;
- ``cfg.json``; ``COMPLETE`` once every latent is done.

Rows are appended and flushed one at a time, so a crash loses at most the row in flight; a
rerun skips the (latent, explainer[, scorer]) rows already written. A random latent is paired
with a trained one by index (``features``) or by frequency rank (``top``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autointerp.config import AutointerpConfig
from autointerp.evidence import study_evidence
from autointerp.explainers import EXPLAINERS, ExplainContext
from autointerp.records import LatentRecords, RecordsConfig, build_records
from autointerp.report import write_examples, write_report
from autointerp.sampling import SampleConfig, sample_latent
from autointerp.scorers import SCORERS, ScoreContext
from radinterp.config import write_json_atomic
from radinterp.sae import load_sae
from radinterp.sae.baselines import random_like
from radinterp.store import open_store

log = logging.getLogger(__name__)

MATCH_AUROC = 0.9
"""Held-out AUROC from which a latent counts as matching a planted finding."""
BASELINE_ROWS = 8192
"""Store rows the random baseline's mean (``b_dec``) and sparsity are matched on."""
MARKER = "COMPLETE"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line in flight when a run died
            log.warning("%s: skipping a truncated line", path)
    return rows


def _n_side(records: LatentRecords) -> int:
    """Patch grid side seen in the kept examples (max patch index + 1)."""
    side = 1
    for exs in records.top:
        for ex in exs:
            if len(ex.patch_row):
                side = max(side, int(ex.patch_row.max()) + 1, int(ex.patch_col.max()) + 1)
    return side


def random_baseline(store, sae, site: str, seed: int):
    """``random_like(sae)`` matched on up to ``BASELINE_ROWS`` random rows of ``store``."""
    n = store.num_tokens(site)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(n, BASELINE_ROWS), replace=False))
    return random_like(sae, store.get_rows(site, rows), seed=seed)


def run_autointerp(cfg: AutointerpConfig) -> dict[str, Any]:
    """Run ``cfg``; returns the summary (also written to ``OUT/summary.json``)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    cfg.save(out / "cfg.json")
    store = open_store(cfg.acts)
    sae = load_sae(cfg.sae)
    site = cfg.site or (sae.cfg.site if sae.cfg.site in store.sites else None)
    if site is None:
        if len(store.sites) != 1:
            raise ValueError(f"the SAE names no site of store {cfg.acts} ({store.sites}); "
                             "pass --site")
        site = store.sites[0]
    studies = store.open_studies(data=cfg.data)
    evidence = {s.study_id: study_evidence(s) for s in studies}
    rcfg = RecordsConfig(site=site, top_k=cfg.top_k, reservoir=cfg.reservoir, seed=cfg.seed)
    scfg = SampleConfig(n_quantiles=cfg.n_quantiles, per_quantile=cfg.per_quantile,
                        n_random=cfg.n_negatives, n_hard=cfg.n_negatives,
                        test_fraction=cfg.test_fraction, seed=cfg.seed)
    recs = {"trained": build_records(store, sae, rcfg, progress=cfg.progress,
                                     checkpoint=out / "records" / "trained")}
    latents = cfg.latents(recs["trained"].frequency())
    pairs: list[tuple[int, int | None]] = [(f, None) for f in latents]
    if cfg.baseline:
        rsae = random_baseline(store, sae, site, cfg.seed)
        recs["random"] = build_records(store, rsae, rcfg, progress=cfg.progress,
                                       checkpoint=out / "records" / "random")
        partners = (latents if cfg.features is not None
                    else cfg.latents(recs["random"].frequency()))
        pairs = [(f, g) for f, g in zip(latents, partners)]
    scorer_names = cfg.scorers
    if scorer_names is None:
        phantom = any(e.findings for e in evidence.values())
        scorer_names = ["embedding", "planted"] if phantom else ["embedding"]
    sctx = {k: ScoreContext(r, evidence, scfg) for k, r in recs.items()}
    ectx = {k: ExplainContext(evidence, _n_side(r)) for k, r in recs.items()}
    explainers = [EXPLAINERS.get(n)() for n in cfg.explainers]
    scorers = {k: [SCORERS.get(n)() for n in scorer_names] for k in recs}
    for k, group in scorers.items():
        for s in group:
            s.prepare(sctx[k])
    done_e = {(r["latent"], r["explainer"]) for r in _read_jsonl(out / "explanations.jsonl")}
    done_s = {(r["latent"], r["explainer"], r["scorer"])
              for r in _read_jsonl(out / "scores.jsonl")}
    from tqdm.auto import tqdm

    with open(out / "explanations.jsonl", "a") as fe, open(out / "scores.jsonl", "a") as fs:
        for f, g in tqdm(pairs, desc="autointerp", unit="latent", disable=not cfg.progress):
            for ex in explainers:
                todo = [i for i, n in enumerate(scorer_names) if (f, ex.name, n) not in done_s]
                if (f, ex.name) in done_e and not todo:
                    continue
                runs = {"trained": f, **({"random": g} if g is not None else {})}
                got = {}
                for k, lat in runs.items():
                    sample = sample_latent(recs[k], lat, scfg)
                    got[k] = (sample, ex.explain(sample, ectx[k]))
                expl, base = got["trained"][1], got.get("random", (None, None))[1]
                if (f, ex.name) not in done_e:
                    _write(fe, {"latent": f, "explainer": ex.name, "explanation": expl.text,
                                "ok": expl.ok, "error": expl.error,
                                "modality": recs["trained"].modality_mix(f),
                                "frequency": recs["trained"].frequency(f),
                                "evidence": expl.evidence, "baseline_latent": g,
                                "baseline_explanation": None if base is None else base.text})
                for i in todo:
                    vals = {k: (scorers[k][i].score(e, s, sctx[k]) if e.ok else None)
                            for k, (s, e) in got.items()}
                    sc, bs = vals["trained"], vals.get("random")
                    _write(fs, {"latent": f, "explainer": ex.name, "scorer": scorer_names[i],
                                "score": None if sc is None else sc.value,
                                "baseline": None if bs is None else bs.value,
                                "details": None if sc is None else sc.details,
                                "baseline_details": None if bs is None else bs.details,
                                "error": expl.error if sc is None else sc.error})
    summary = summarize(out, len(latents))
    write_json_atomic(out / "summary.json", summary)
    write_examples(out, recs["trained"], latents, studies, scfg, store=store,
                   progress=cfg.progress)
    write_report(out)
    (out / MARKER).write_text("done\n")
    return summary


def _write(fh, row: dict[str, Any]) -> None:
    fh.write(json.dumps(row, default=_default) + "\n")
    fh.flush()


def _default(obj: Any) -> Any:
    if isinstance(obj, (np.generic, torch.Tensor)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def _mean(vals: list[float | None]) -> float | None:
    vals = [v for v in vals if v is not None and not np.isnan(v)]
    return float(np.mean(vals)) if vals else None


def _planted(rows: list[dict[str, Any]], details: str, value: str) -> dict[str, Any]:
    matched = [r for r in rows if r[details] and r[details].get("auroc_test", 0) >= MATCH_AUROC]
    named = sum(bool(r[value]) for r in matched)
    return {"n_matched": len(matched), "n_named": named,
            "named_rate": named / len(matched) if matched else None}


def summarize(out: Path, n_latents: int) -> dict[str, Any]:
    """The summary of the rows in ``out``'s jsonl files."""
    expl = _read_jsonl(out / "explanations.jsonl")
    scores = _read_jsonl(out / "scores.jsonl")
    summary: dict[str, Any] = {
        "n_latents": n_latents, "n_explanations": len(expl),
        "n_failed": sum(not r["ok"] for r in expl), "scorers": {}}
    for key in sorted({(r["explainer"], r["scorer"]) for r in scores}):
        rows = [r for r in scores if (r["explainer"], r["scorer"]) == key]
        summary["scorers"]["/".join(key)] = {
            "n": len(rows), "mean": _mean([r["score"] for r in rows]),
            "baseline": _mean([r["baseline"] for r in rows])}
        if key[1] == "planted":
            summary.setdefault("planted_by_explainer", {})[key[0]] = {
                **_planted(rows, "details", "score"),
                "baseline": _planted(rows, "baseline_details", "baseline")}
    by = summary.get("planted_by_explainer", {})
    if by:  # the headline: the enrichment explainer's (else the first explainer's)
        summary["planted"] = {"explainer": "enrichment" if "enrichment" in by else min(by),
                              **by.get("enrichment", by[min(by)])}
    return summary


__all__ = ["MATCH_AUROC", "random_baseline", "run_autointerp", "summarize"]
