"""``run_eval``: one SAE on one activation store -> ``OUT/metrics.json`` + ``OUT/metrics.html``.

Parts (reconstruction, fidelity, concepts) are written to ``OUT/parts/NAME.json`` as each
finishes, so an interrupted run resumes at the first unfinished part; a finished run
(``metrics.json`` present) is a no-op unless ``overwrite``. Every number of the trained SAE
sits beside the same number for a random SAE of the same shape and L0
(:func:`radinterp.sae.baselines.random_like`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from radinterp.config import write_json_atomic
from radinterp.errors import InputError
from radinterp.models.tokens import TokenKind
from radinterp.sae import SparseAutoencoder, load_sae
from radinterp.sae.baselines import random_like
from radinterp.store import Store, open_store
from eval.sae_eval.config import EvalConfig
from eval.sae_eval.recon import GroupedRecon

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
HTML_FILE = "metrics.html"
PARTS_DIR = "parts"
KIND_NAMES = {int(k): k.name.lower() for k in TokenKind}


def resolve_site(sae: SparseAutoencoder, store: Store, site: str | None) -> str:
    """The store site to evaluate: checked against the SAE's own site and width."""
    if store.num_tokens() == 0:
        raise InputError(f"store {store.root} holds no rows", "capture activations into it first "
                         "(radinterp capture) or pass another --acts")
    own = sae.cfg.site
    if site is None:
        site = own if own else (store.sites[0] if len(store.sites) == 1 else None)
    if site is None:
        raise InputError(f"store {store.root} holds sites {store.sites} and the SAE records none",
                         "pass --site")
    if site not in store.sites:
        raise InputError(f"the SAE was trained at {site!r}, store {store.root} holds {store.sites}",
                         f"pass --acts a store captured at {site} (radinterp capture --site {site})")
    if own and own != site:
        raise InputError(f"--site {site} differs from the SAE's site {own!r}",
                         f"pass --site {own} or an SAE trained at {site}")
    if sae.d_in != store.d_model:
        raise InputError(f"the SAE reads d_in={sae.d_in} but store {store.root} holds d_model="
                         f"{store.d_model}", "pass the store of the model the SAE was trained on")
    return site


def _training_store(sae_dir: Path) -> tuple[str | None, int | None]:
    """(store the SAE was trained on, rows training held out) from train_cfg.json, if any."""
    path = sae_dir / "train_cfg.json"
    if not path.is_file():
        return None, None
    rec = json.loads(path.read_text())
    return rec.get("source", {}).get("source"), rec.get("plan", {}).get("held_out_tokens")


def select_rows(cfg: EvalConfig, store: Store) -> tuple[int, int, str]:
    """[lo, hi) global rows to evaluate and the mode used."""
    n = store.num_tokens()
    src, held = _training_store(Path(cfg.sae))
    same = src is not None and Path(src).resolve() == Path(cfg.acts).resolve()
    mode = cfg.rows if cfg.rows != "auto" else ("held_out" if same else "all")
    if mode == "held_out":
        if not held:
            raise InputError(f"{cfg.sae} records no held-out rows (no train_cfg.json)",
                             "pass --rows all with a store the SAE was not trained on")
        if not same:
            raise InputError(f"--rows held_out needs the store the SAE was trained on ({src})",
                             "pass --acts that store, or --rows all")
        lo, hi = n - int(held), n
    else:
        lo, hi = 0, n
    if cfg.max_tokens:
        hi = min(hi, lo + cfg.max_tokens)
    return lo, hi, mode


def _iter_rows(store: Store, site: str, lo: int, hi: int, chunk: int):
    """(acts (n, d_model) float32, kinds (n,), study ids (n,)) chunks of global rows [lo, hi),
    one shard in memory at a time."""
    for i, ref in enumerate(store.shards):
        a, b = max(lo, ref.row_offset), min(hi, ref.row_offset + ref.rows)
        if a >= b:
            continue
        acts = store.shard_acts(i, site)[a - ref.row_offset:b - ref.row_offset]  # (b - a, d_model)
        meta = store.metadata(np.arange(a, b))
        for s in range(0, b - a, chunk):
            yield acts[s:s + chunk], meta["kind"][s:s + chunk], meta["study_id"][s:s + chunk]


def _first_rows(store: Store, site: str, lo: int, hi: int, n: int) -> torch.Tensor:
    """The first ``n`` rows of [lo, hi) as (<= n, d_model)."""
    parts, need = [], n
    for x, _, _ in _iter_rows(store, site, lo, hi, n):
        parts.append(x[:need])
        need -= parts[-1].shape[0]
        if need <= 0:
            break
    return torch.cat(parts)


def reconstruction(sae, rand, store: Store, site: str, lo: int, hi: int, cfg: EvalConfig) -> dict[str, Any]:
    from tqdm.auto import tqdm

    trained = GroupedRecon(sae, list(sae.cfg.widths), KIND_NAMES)
    random = GroupedRecon(rand, list(sae.cfg.widths), KIND_NAMES)
    studies: list[str] = []
    bar = tqdm(total=hi - lo, desc="reconstruction", unit="tok", disable=not cfg.progress)
    for x, kinds, ids in _iter_rows(store, site, lo, hi, cfg.chunk_rows):
        x = x.to(cfg.device)
        trained.add(x, kinds)
        random.add(x, kinds)
        studies.extend(dict.fromkeys(ids.tolist()))
        bar.update(x.shape[0])
    bar.close()
    return {"rows": [lo, hi], "studies": list(dict.fromkeys(studies)),
            "trained": trained.result(), "random": random.result()}


def _pooled_codes(encoders: dict[str, Any], store: Store, site: str, ids: list[str]) -> dict[str, np.ndarray]:
    out = {name: np.zeros((len(ids), enc.d_sae), np.float32) for name, enc in encoders.items()}
    pos = {s: i for i, s in enumerate(ids)}
    with torch.no_grad():
        for sid, _, x in store.iter_studies(site, ids):
            for name, enc in encoders.items():
                out[name][pos[sid]] = enc.encode(x).float().mean(0).numpy()
    return out


def concepts(sae, rand, store: Store, site: str, cfg: EvalConfig) -> dict[str, Any]:
    from eval.sae_eval.probing import probe_concepts, study_labels

    studies = store.open_studies(data=cfg.data)
    if cfg.probe_studies:
        studies = studies[: cfg.probe_studies]
    ids = [s.study_id for s in studies]
    codes = _pooled_codes({"trained": sae, "random": rand}, store, site, ids)
    return probe_concepts(codes, ids, study_labels(studies), min_each=cfg.probe_min_each, seed=cfg.seed)


def fidelity(sae, rand, store: Store, site: str, studies_ids: list[str], cfg: EvalConfig) -> dict[str, Any]:
    from radinterp.models import load_adapter
    from eval.sae_eval.fidelity import measure_fidelity

    model = cfg.model or store.manifest["model"]
    adapter = load_adapter(model, device=cfg.device)
    wanted = studies_ids[: cfg.fidelity_studies]
    studies = store.open_studies(data=cfg.data, study_ids=wanted)
    variants = {"sae": sae.forward}
    if cfg.random_fidelity:
        variants["random"] = lambda h: rand.decode(rand.encode(h.reshape(-1, h.shape[-1]))).reshape(h.shape)
    return measure_fidelity(adapter, site, studies, variants, batch_size=cfg.fidelity_batch,
                            method=cfg.fidelity_method, progress=cfg.progress)


def run_eval(cfg: EvalConfig, *, overwrite: bool = False) -> dict[str, Any]:
    """Evaluate ``cfg.sae`` on ``cfg.acts``; returns the metrics dict written to metrics.json."""
    out = Path(cfg.out)
    if (out / METRICS_FILE).exists() and not overwrite:
        log.info("%s exists: nothing to do (pass --overwrite to re-run)", out / METRICS_FILE)
        return json.loads((out / METRICS_FILE).read_text())
    sae = load_sae(cfg.sae, device=cfg.device)
    store = open_store(cfg.acts)
    site = resolve_site(sae, store, cfg.site)
    lo, hi, mode = select_rows(cfg, store)
    parts = out / PARTS_DIR
    if overwrite:
        for p in parts.glob("*.json"):
            p.unlink()
    cfg.save(out / "cfg.json")
    sample = _first_rows(store, site, lo, hi, 8192).to(cfg.device)  # (<= 8192, d_in)
    rand = random_like(sae, sample, mode="threshold", seed=cfg.seed).to(cfg.device)
    seconds: dict[str, float] = {}

    def part(name: str, fn) -> dict[str, Any] | None:
        path = parts / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
        t0 = time.perf_counter()
        result = fn()
        seconds[name] = time.perf_counter() - t0
        if result is not None:
            result["seconds"] = seconds[name]
            write_json_atomic(path, result)
        return result

    recon = part("reconstruction", lambda: reconstruction(sae, rand, store, site, lo, hi, cfg))
    fid = part("fidelity", lambda: fidelity(sae, rand, store, site, recon["studies"], cfg)
               if cfg.fidelity_studies else None)
    con = part("concepts", lambda: concepts(sae, rand, store, site, cfg)
               if cfg.probe_studies != 0 else None)
    metrics = {
        "sae": str(cfg.sae), "acts": str(cfg.acts), "site": site, "model": store.manifest["model"],
        "d_in": sae.d_in, "d_sae": sae.d_sae, "k": sae.cfg.k, "widths": list(sae.cfg.widths),
        "rows": {"mode": mode, "range": recon["rows"], "n": recon["rows"][1] - recon["rows"][0],
                 "studies": len(recon["studies"])},
        "random_baseline": {"what": "random_like: random unit-norm decoder, encoder = its "
                                    "transpose, b_dec = data mean, one threshold giving the trained L0 on the "
                                    "first 8192 evaluated rows",
                            "threshold": rand.threshold},
        "reconstruction": {k: recon[k] for k in ("trained", "random")},
        "fidelity": fid, "concepts": con, "calibration": _calibration(Path(cfg.sae)),
    }
    from eval.sae_eval.report import write_html

    write_html(metrics, out / HTML_FILE)
    write_json_atomic(out / METRICS_FILE, metrics)
    return metrics


def _calibration(sae_dir: Path) -> dict[str, Any] | None:
    path = sae_dir / "calibration.json"
    return json.loads(path.read_text()) if path.is_file() else None


__all__ = ["HTML_FILE", "METRICS_FILE", "resolve_site", "run_eval", "select_rows"]
