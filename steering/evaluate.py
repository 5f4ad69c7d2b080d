"""``run_steering``: steer, generate, label, and measure, per target x method x coefficient.

Held-out studies (in ``data``, not in the store) are split into a selection and a test half.
Every arm (a method at a coefficient, a random direction of equal norm, the reversed direction,
the unsteered baseline) is generated greedily, exactly as the baseline, on the studies without
the target finding (``ablate``: with it); the coefficient of each target x method is chosen on
the selection half (largest target-rate rise over the random controls at that coefficient) and
reported on the test half. Arms of many configurations share one batch (``scoring.segmented``).

Writes ``OUT/generations.jsonl`` (every report, appended and flushed per batch: a rerun skips
what is there), ``OUT/steering.json`` (rows: target, method, coef, target_rate, baseline_rate,
random_control_rate, reversed_rate, collateral_flip_rate, perplexity, split, ...),
``OUT/steering.html`` and ``OUT/COMPLETE``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from radinterp.config import BaseConfig, write_json_atomic
from radinterp.errors import InputError
from radinterp.generation import DecodeConfig, generate
from radinterp.labels import ALL_LABELS, is_positive, label_report
from steering.arms import Arm, plan_arms
from steering.methods import METHODS, WHERE, Resources
from steering.scoring import continuation_logprobs, segmented
from steering.selection import SELECTIONS

log = logging.getLogger(__name__)

GENERATIONS, RESULT, HTML, DONE = "generations.jsonl", "steering.json", "steering.html", "COMPLETE"
STEERED_COEF = 1.0
"""``steered`` selection generates each candidate at the sweep's coefficient nearest this."""


@dataclass
class SteerConfig(BaseConfig):
    """What ``radinterp steer`` runs."""

    data: str
    """Evaluation studies (phantom folder or any source with reference labels)."""
    out: str
    """Output folder."""
    model: str = "demo"
    """Adapter name or model folder."""
    sae: str | None = None
    """SAE folder (add, clamp, ablate)."""
    acts: str | None = None
    """Activation store at the site (residual scale, diffmean, AUROC feature selection); its
    studies are left out of the evaluation."""
    site: str | None = None
    """Canonical site; default: the SAE's (or the store's only site)."""
    sites: list[str] = field(default_factory=list)
    """Several sites steered at once (``--layers 10,15``): the same method at each, with each
    site's own scale, direction and SAE (``sae``: one folder per site, comma-separated);
    overrides ``site``."""
    features: list[int] = field(default_factory=list)
    """SAE latents to steer with (``--feature``)."""
    findings: list[str] = field(default_factory=list)
    """Labels to steer toward (``--finding``); SAE methods pick their feature per ``selection``."""
    methods: list[str] = field(default_factory=lambda: ["add"])
    """``METHODS`` names."""
    coefs: list[float] = field(default_factory=lambda: [0.5, 1.0, 2.0])
    """Coefficient sweep (multiples of the residual norm; clamp: of the feature's typical value)."""
    where: str = "image"
    """Positions edited: all, image, prompt, generated."""
    selection: list[str] = field(default_factory=lambda: ["auroc", "effect"])
    """How ``--finding`` picks a feature: auroc, effect, steered (each one listed is evaluated)."""
    n: int = 24
    """Held-out studies used (split in half: selection / test)."""
    n_with: int = 0
    """Held-out studies *with* each target finding drawn beside the ``n`` (from the rest of
    ``data``, split like them), so ``ablate`` has studies to remove the finding from."""
    n_random: int = 2
    """Random directions of equal norm per coefficient."""
    max_new_tokens: int = 64
    """Generation length (the same for every arm)."""
    batch_size: int = 16
    """Rows per generate call (arms are mixed in one batch)."""
    seed: int = 0
    """Seed of the split and the random directions."""
    dtype: str = "float32"
    """Model dtype."""
    progress: bool = True
    """Progress bars."""

    def __post_init__(self) -> None:
        self.coefs = [float(c) for c in self.coefs]
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise InputError(f"unknown steering method {bad[0]!r}", f"use one of: {', '.join(METHODS.names())}")
        if self.where not in WHERE:
            raise InputError(f"unknown --where {self.where!r}", f"use one of: {', '.join(WHERE)}")
        if not self.features and not self.findings:
            raise InputError("nothing to steer", "pass --feature F or --finding NAME")
        unknown = [f for f in self.findings if f not in ALL_LABELS]
        if unknown:
            raise InputError(f"unknown finding {unknown[0]!r}", f"use one of: {', '.join(ALL_LABELS)}")
        if not all(math.isfinite(c) for c in self.coefs) or not self.coefs:
            raise InputError(f"coefficients {self.coefs} are not all finite", "pass finite --coef values, e.g. 0.5,1,2")
        self.selection = [s for s in self.selection if s]
        if [s for s in self.selection if s not in SELECTIONS]:
            raise InputError(f"unknown selection {self.selection}", f"use a comma list of: {', '.join(SELECTIONS)}")
        if len(self.sites) > 1 and [s for s in self.selection if s != "auroc"] and self.findings \
                and any(m in ("add", "clamp", "ablate") for m in self.methods):
            raise InputError(f"selection {self.selection} with several sites (effect and steered generate at one site)",
                             "pass --selection auroc or one layer")
        if self.n_with < 0:
            raise InputError(f"n_with {self.n_with} is negative", "pass --n-with 0 or more")
        if self.n < 2 or self.batch_size < 1 or self.max_new_tokens < 1 or self.n_random < 0:
            raise InputError("n must be >= 2, batch_size and max_new_tokens >= 1, n_random >= 0",
                             "pass e.g. --n 24")
        if any(m in ("add", "clamp", "ablate") for m in self.methods) and not self.sae:
            raise InputError("methods add / clamp / ablate steer SAE features", "pass --sae SAE_FOLDER")
        if any(m.startswith("diffmean") for m in self.methods) and not self.acts:
            raise InputError("diffmean needs residuals of labelled studies", "pass --acts STORE")


# ---------------------------------------------------------------- records
def read_records(path: Path) -> dict[tuple[str, str, str], dict]:
    """(split, arm, study id) -> record of every finished generation (a torn last line is dropped)."""
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            out[(r["split"], r["arm"], r["study_id"])] = r
    return out


def run_arms(res: Resources, arms: list[Arm], studies_of: dict[str, list], split: str, cfg: SteerConfig,
             done: dict, fh) -> None:
    """Generate every (arm, study) of ``split`` not in ``done``; append records to ``fh``.
    Arms may edit several sites (``steering.sites``): each site gets its own segmented edit."""
    sites = list(dict.fromkeys(site for a in arms if a.steering for site in a.steering.edits))
    decode = DecodeConfig(max_new_tokens=cfg.max_new_tokens)
    todo = [(a, s) for a in arms for s in studies_of[a.key] if (split, a.key, s.study_id) not in done]
    adapter = res.adapter
    bar = tqdm(total=len(todo), desc=f"steer {split}", unit="report", disable=not cfg.progress)
    for lo in range(0, len(todo), cfg.batch_size):
        chunk = todo[lo:lo + cfg.batch_size]
        parts: dict[str, list] = {site: [] for site in sites}
        items = []
        for a, s in chunk:
            st = a.steering.items([s])[0] if a.steering else s
            items.append(adapter.build_inputs(st))
            for site, seg in parts.items():  # runs of rows with one edit (or none) at each site
                fn = a.steering.edits.get(site) if a.steering else None
                if seg and seg[-1][1] is fn:
                    seg[-1] = (seg[-1][0] + 1, fn)
                else:
                    seg.append((1, fn))
        edits = {site: segmented(seg) for site, seg in parts.items() if any(fn for _, fn in seg)} or None
        gen = generate(adapter, items, decode, batch_size=len(items), edits=edits)
        # perplexity under the unsteered model, after the unsteered prompt
        plain = [adapter.build_inputs(s) for _, s in chunk]
        lps = continuation_logprobs(adapter, plain, gen.new_ids, batch_size=len(items))
        for (a, s), text, ids, lp in zip(chunk, gen.texts, gen.new_ids, lps):
            rec = {"split": split, "arm": a.key, "study_id": s.study_id, "text": text.strip(),
                   "n_new": len(ids), "hit_limit": bool(len(ids) >= cfg.max_new_tokens
                                                        and int(ids[-1]) != adapter.tokenizer.eos_token_id),
                   "nll": float(-lp.sum()), "n_tok": len(ids), "labels": label_report(text)}
            done[(split, a.key, s.study_id)] = rec
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
        fh.flush()
        bar.update(len(chunk))
    bar.close()


# ---------------------------------------------------------------- rows
def _rate(recs: list[dict], label: str) -> float | None:
    return float(np.mean([is_positive(r["labels"], label) for r in recs])) if recs else None


def arm_row(arm: Arm, split: str, ids: list[str], done: dict, base_key: str, random_keys: list[str],
            reversed_key: str | None, labels: list[str]) -> dict:
    """One row of steering.json: the arm's rates on ``ids`` beside its controls."""
    get = lambda key: [done[(split, key, i)] for i in ids if (split, key, i) in done]  # noqa: E731
    recs, base = get(arm.key), get(base_key)
    t = arm.target
    rand = [_rate(get(k), t) for k in random_keys] if t else []
    rand = [r for r in rand if r is not None]
    by_id = {r["study_id"]: r for r in base}
    others = [lab for lab in labels if lab != t]
    flips = [is_positive(r["labels"], lab) != is_positive(by_id[r["study_id"]]["labels"], lab)
             for r in recs if r["study_id"] in by_id for lab in others]
    n_tok = sum(r["n_tok"] for r in recs)
    rises = {lab: _rate(recs, lab) - _rate(base, lab) for lab in others if recs and base}
    return {
        "target": t, "method": arm.method, "coef": arm.coef, "split": split, "feature": arm.feature,
        "selection": arm.selection, "where": arm.where, "n": len(recs), "population": arm.population,
        "target_rate": _rate(recs, t) if t else None, "baseline_rate": _rate(base, t) if t else None,
        "random_control_rate": float(np.mean(rand)) if rand else None, "random_control_rates": rand,
        "reversed_rate": _rate(get(reversed_key), t) if reversed_key and t else None,
        "collateral_flip_rate": float(np.mean(flips)) if flips else None,
        "collateral_rise": {k: v for k, v in rises.items() if v},
        "perplexity": math.exp(sum(r["nll"] for r in recs) / n_tok) if n_tok else None,
        "parseable_rate": float(np.mean([bool(r["labels"]) for r in recs])) if recs else None,
        "length_limit_rate": float(np.mean([r["hit_limit"] for r in recs])) if recs else None,
        "direction": arm.direction_name,
    }


def rise_over_control(row: dict) -> float | None:
    """A row's target-rate rise over its random controls (over the unsteered rate when it has
    none); None when a rate is missing."""
    ctrl = row["random_control_rate"] if row["random_control_rate"] is not None else row["baseline_rate"]
    return None if row["target_rate"] is None or ctrl is None else row["target_rate"] - ctrl


def choose_coefs(rows: list[dict]) -> dict[str, float | None]:
    """Per (target, method, selection): the selection-split coefficient with the largest
    target-rate rise over the random controls (the smaller coefficient on ties)."""
    best: dict[str, tuple[float, float | None]] = {}
    for r in rows:
        if r["split"] != "select" or r["target_rate"] is None:
            continue
        score = rise_over_control(r)
        if r["method"] == "ablate":
            score = -score
        k = group_key(r)
        c = r["coef"]
        if k not in best or score > best[k][0] + 1e-9 or (abs(score - best[k][0]) < 1e-9 and c is not None
                                                         and best[k][1] is not None and abs(c) < abs(best[k][1])):
            best[k] = (score, c)
    return {k: v[1] for k, v in best.items()}


def select_by_generation(env, cfg: SteerConfig, done: dict, fh) -> None:
    """``steered`` selection: each finding's AUROC candidates added at ``STEERED_COEF`` (or the
    sweep's coefficient nearest it) on the first ``STEERED_STUDIES`` selection-split studies
    without the finding; the one whose reports state the finding most often wins (ties: the
    better selection AUROC). Its reports are the sweep's own arm records (same key), reused."""
    from steering.arms import steered_candidate_arms
    from steering.setup import STEERED_STUDIES

    if "steered" not in cfg.selection or not env.candidates:
        return
    coef = min(cfg.coefs, key=lambda c: (abs(c - STEERED_COEF), -c))
    arms, studies_of = steered_candidate_arms(env, cfg, coef, STEERED_STUDIES)
    run_arms(env.res, arms, studies_of, "select", cfg, done, fh)
    for finding, cands in env.candidates.items():
        n_studies = 0
        for c in cands:
            a = next(a for a in arms if a.target == finding and a.feature == c.feature)
            recs = [done[("select", a.key, s.study_id)] for s in studies_of[a.key]]
            c.steered_rate, n_studies = _rate(recs, finding), len(recs)
        best = max(cands, key=lambda c: (c.steered_rate or 0.0, c.auroc_select))
        env.features_for[finding]["steered"] = best.feature
        env.selection_info[finding] = {"picked": env.features_for[finding], "steered_coef": coef,
                                       "steered_studies": n_studies,
                                       "candidates": [vars(c) for c in cands]}
        log.info("%s: steered selection picks %d (rates %s)", finding, best.feature,
                 [(c.feature, c.steered_rate) for c in cands])


def group_key(row: dict) -> str:
    f = row["feature"]
    f = tuple(f) if isinstance(f, list) else f  # one feature per site (JSON turns the tuple into a list)
    return f"{row['target']}|{row['method']}|{row['selection'] or ''}|{f}"


def run_steering(cfg: SteerConfig, adapter=None) -> dict:
    """The whole evaluation; resumable through ``OUT/generations.jsonl``."""
    from steering.report import write_html
    from steering.setup import prepare

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "cfg.json"
    if saved.exists() and json.loads(saved.read_text()) != cfg.to_dict() and (out / GENERATIONS).exists():
        raise InputError(f"{out} holds a run with another configuration", "pass another --out or delete it")
    cfg.save(saved)
    t0 = time.time()
    env = prepare(cfg, adapter)  # loads and validates everything; generates nothing
    done = read_records(out / GENERATIONS)
    rows: list[dict] = []
    with open(out / GENERATIONS, "a") as fh:
        select_by_generation(env, cfg, done, fh)
        sel_plan = plan_arms(env, cfg, split="select", coefs=None)
        run_arms(env.res, sel_plan.arms, sel_plan.studies_of, "select", cfg, done, fh)
        rows += sel_plan.rows("select", done, env.labels)
        chosen = choose_coefs(rows)
        test_plan = plan_arms(env, cfg, split="test", coefs=chosen)
        run_arms(env.res, test_plan.arms, test_plan.studies_of, "test", cfg, done, fh)
        rows += test_plan.rows("test", done, env.labels)
    result = {"cfg": cfg.to_dict(), "site": env.res.site, "sites": [r.site for r in env.resources],
              "stats": {r.site: r.stats.norms for r in env.resources},
              "selection": env.selection_info, "chosen_coefs": chosen, "rows": rows,
              "n_select": len(env.splits["select"]), "n_test": len(env.splits["test"]),
              "seconds": time.time() - t0}
    write_json_atomic(out / RESULT, result)
    write_html(result, out / HTML)
    (out / DONE).write_text("done\n")
    return result
