"""``run_autointerp``: records -> samples -> explanations -> scores, for the trained SAE and a
random baseline SAE of the same shape and sparsity, written line by line and resumable.

Outputs under ``cfg.out``:

- ``explanations.jsonl``: one row per (latent, explainer): ``latent``, ``explainer``,
  ``explanation``, ``ok``, ``error``, ``modality`` (mix), ``frequency``, ``evidence`` (for LLM
  explainers: the raw reply, tokens, seconds), and the baseline's paired latent, explanation
  and ``baseline_ok`` / ``baseline_error``;
- ``scores.jsonl``: one row per (latent, explainer, scorer): ``score``, ``baseline`` (the same
  scorer on the paired random latent's explanation), ``details``;
- ``summary.json``: counts, mean score and baseline per scorer, and on phantom data
  ``planted: {n_matched, named_rate}`` (latents whose held-out AUROC for their best planted
  finding is >= ``MATCH_AUROC``, and the share of those the explanation names), for both SAEs;
  with an LLM, ``llm``: the client's token accounting for this run (requests, cached, tokens,
  retries);
- ``llm-cache/`` (``openai`` client): one file per finished reply, so a killed run resumes
  without repeating a request; no request text and no key in it;
- ``cfg.json`` (no key: only the name of its environment variable); ``COMPLETE`` once every
  latent is done.

Latents run ``concurrency`` at a time on one event loop (LLM explainers and judges await the
client, so their requests overlap; the random baseline's explanation and scores are asked
beside the trained latent's, with the same explainer and scorers). Each latent's rows are
appended and flushed as soon as it is done, so a crash loses at most the latents in flight
(their replies stay in the cache); a rerun skips the (latent, explainer[, scorer]) rows
already written, and scores a written explanation from its row without asking again. A
request that fails for good (``LLMRequestError``) stops the run; an unparsable reply is a
failed explanation (``ok`` false), never scored. A random latent is paired with a trained one
by index (``features``) or by frequency rank (``top``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autointerp.clients.base import CLIENTS, gather_limited, run_sync
from autointerp.config import AutointerpConfig
from autointerp.evidence import study_evidence
from autointerp.explainers import EXPLAINERS, ExplainContext, Explanation
from autointerp.records import LatentRecords, RecordsConfig, build_records
from autointerp.render import ExampleRenderer
from autointerp.report import write_examples, write_report
from autointerp.report.examples import store_adapter
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
CACHE_DIR = "llm-cache"
"""Folder under OUT of the openai client's reply cache (a killed run resumes from it)."""


def read_jsonl_rows(path: Path) -> list[dict[str, Any]]:
    """The records of an autointerp line file (explanations, scores, examples); [] when it does
    not exist yet, a torn last line (a killed run) skipped with a warning."""
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
    """Run ``cfg``; returns the summary (also written to ``OUT/summary.json``). Synchronous,
    also when called inside a running event loop (Jupyter): see ``clients.run_sync``."""
    return run_sync(arun_autointerp(cfg))


def capture_adapter(store):
    """The store's capture model adapter (its tokenizer and patch geometry; loaded once, on the
    CPU, with the capture's options), or None when the manifest's model is not one this install
    can load (then reports are shown unmarked)."""
    try:
        return store_adapter(store)
    except (KeyError, ValueError, OSError, ImportError) as e:
        log.warning("cannot load the store's model %r (%s); reports are shown without marking "
                    "the firing tokens", store.manifest.get("model"), e)
        return None


async def arun_autointerp(cfg: AutointerpConfig) -> dict[str, Any]:
    """``run_autointerp`` as a coroutine: latents are processed ``cfg.concurrency`` at a time
    (their LLM requests overlap); each latent's rows are written as soon as it is done."""
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
    client, renderer, adapter = None, None, None
    if cfg.needs_llm:
        client = CLIENTS.get(cfg.client)(cfg.client_config(cache_dir=str(out / CACHE_DIR)))
        adapter = capture_adapter(store)
        renderer = ExampleRenderer(
            {s.study_id: s for s in studies}, _n_side(recs["trained"]), adapter,
            with_report=bool(store.manifest.get("config", {}).get("with_report", True)))
    sctx = {k: ScoreContext(r, evidence, scfg, renderer, client) for k, r in recs.items()}
    ectx = {k: ExplainContext(evidence, _n_side(r), renderer, client, cfg.max_tokens)
            for k, r in recs.items()}
    explainers = [EXPLAINERS.get(n)() for n in cfg.explainers]
    scorers = {k: [SCORERS.get(n)() for n in scorer_names] for k in recs}
    for k, group in scorers.items():
        for s in group:
            s.prepare(sctx[k])
    done_e = {(r["latent"], r["explainer"]): r for r in read_jsonl_rows(out / "explanations.jsonl")}
    done_s = {(r["latent"], r["explainer"], r["scorer"])
              for r in read_jsonl_rows(out / "scores.jsonl")}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pairs), desc="autointerp", unit="latent", disable=not cfg.progress)

    async def one(f: int, g: int | None, fe, fs) -> None:
        for ex in explainers:
            todo = [i for i, n in enumerate(scorer_names) if (f, ex.name, n) not in done_s]
            if (f, ex.name) in done_e and not todo:
                continue
            runs = {"trained": f, **({"random": g} if g is not None else {})}
            samples = {k: sample_latent(recs[k], lat, scfg) for k, lat in runs.items()}
            if (f, ex.name) in done_e:  # explained before a crash: scored from the row
                expl = _from_row(done_e[(f, ex.name)], g)
            else:
                keys = list(runs)
                got = await asyncio.gather(*(ex.aexplain(samples[k], ectx[k]) for k in keys))
                expl = dict(zip(keys, got, strict=True))
                base = expl.get("random")
                _write(fe, {"latent": f, "explainer": ex.name, "explanation": expl["trained"].text,
                            "ok": expl["trained"].ok, "error": expl["trained"].error,
                            "modality": recs["trained"].modality_mix(f),
                            "frequency": recs["trained"].frequency(f),
                            "evidence": expl["trained"].evidence, "baseline_latent": g,
                            "baseline_explanation": None if base is None else base.text,
                            "baseline_ok": None if base is None else base.ok,
                            "baseline_error": None if base is None else base.error})
            for i in todo:
                keys = [k for k in runs if expl[k].ok]
                got = await asyncio.gather(*(scorers[k][i].ascore(expl[k], samples[k], sctx[k])
                                             for k in keys))
                vals = dict(zip(keys, got, strict=True))
                sc, bs = vals.get("trained"), vals.get("random")
                bare = {k: scorers[k][i].latent_details(samples[k], sctx[k])
                        for k in runs if k not in vals}  # failed explanations: not scored
                _write(fs, {"latent": f, "explainer": ex.name, "scorer": scorer_names[i],
                            "score": None if sc is None else sc.value,
                            "baseline": None if bs is None else bs.value,
                            "details": bare.get("trained") if sc is None else sc.details,
                            "baseline_details": bare.get("random") if bs is None else bs.details,
                            "error": expl["trained"].error if sc is None else sc.error})
        bar.update(1)

    try:
        with open(out / "explanations.jsonl", "a") as fe, open(out / "scores.jsonl", "a") as fs:
            await gather_limited([one(f, g, fe, fs) for f, g in pairs], cfg.concurrency)
    finally:
        bar.close()
        if client is not None:
            await client.aclose()
    summary = summarize(out, len(latents))
    if client is not None:
        summary["llm"] = {"client": cfg.client, **dataclasses.asdict(client.usage)}
    write_json_atomic(out / "summary.json", summary)
    write_examples(out, recs["trained"], latents, studies, scfg, store=store, adapter=adapter,
                   progress=cfg.progress)
    write_report(out)
    (out / MARKER).write_text("done\n")
    return summary


def _from_row(row: dict[str, Any], g: int | None) -> dict[str, Explanation]:
    """The explanations of a written row (trained, and the random baseline's when paired)."""
    out = {"trained": Explanation(row["latent"], row["explainer"], row["explanation"],
                                  row["ok"], row["error"], row.get("evidence") or {})}
    if g is not None:
        text = row.get("baseline_explanation")
        ok = row.get("baseline_ok", bool(text))  # rows before baseline_ok: text means ok
        out["random"] = Explanation(g, row["explainer"], text or "", bool(ok),
                                    row.get("baseline_error"))
    return out


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
    """Matched latents (held-out AUROC >= MATCH_AUROC, known also beside a failed explanation,
    which counts as not naming the finding) and the share named."""
    matched = [r for r in rows if r[details] and r[details].get("auroc_test", 0) >= MATCH_AUROC]
    named = sum(bool(r[value]) for r in matched)
    return {"n_matched": len(matched), "n_named": named,
            "n_failed": sum(r[value] is None for r in matched),
            "named_rate": named / len(matched) if matched else None}


def summarize(out: Path, n_latents: int) -> dict[str, Any]:
    """The summary of the rows in ``out``'s jsonl files."""
    expl = read_jsonl_rows(out / "explanations.jsonl")
    scores = read_jsonl_rows(out / "scores.jsonl")
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


__all__ = ["CACHE_DIR", "MATCH_AUROC", "arun_autointerp", "capture_adapter", "random_baseline",
           "read_jsonl_rows", "run_autointerp", "summarize"]
