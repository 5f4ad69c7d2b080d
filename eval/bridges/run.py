"""``run_bridge(cfg)``: SAE features vs CSR / INSIGHT / radiomics / planted findings / labels.

Writes ``OUT/cfg.json`` first, each stage to ``OUT/parts/`` (summaries.safetensors,
associations.json, localisation.json, radiomics.json) as it finishes, then ``bridge.json`` and
``bridge.html``; an interrupted run resumes at the first missing part, a finished one is a
no-op. Another run's folder is refused unless ``overwrite``.

With ``twins`` (a store of the phantoms' healthy twins), the localisation part also holds the
counterfactual: the matched feature on the study vs on its twin, and the study-minus-twin map.
Every association has a linear-probe baseline beside the random SAE and the permutation.

Splits: the *report* studies are ``report_fraction`` of the studies the method runs wrote maps
for (their test split; all store studies when no method is given), drawn by a seeded hash;
every other store study is for *selection*. Every feature choice (best per target, Hungarian
matching) is made on selection studies; every reported number comes from report studies.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from eval.bridges.associate import agreement, associate, benjamini_hochberg, match_targets, report_split
from eval.bridges.config import SCOPES, BridgeConfig
from eval.bridges.localise import localise, map_correlation, winners
from eval.bridges.probe import joint_binary_scores, probe_associate
from eval.bridges.summaries import POOLS, Summaries, check_sae_store, feature_maps, sample_rows, study_summaries
from eval.bridges.targets import MethodRun, Target, load_method, method_targets, study_targets
from eval.methods.io import load_safetensors, save_safetensors_atomic
from radinterp.config import write_json_atomic
from radinterp.errors import InputError

log = logging.getLogger(__name__)
ENCODERS = ("trained", "random")
PROBES = {"probe": "mean", "probe_max": "max"}
"""Linear-probe baseline name -> the pooling of its residual features (summaries.POOLS)."""
BASELINES = (*ENCODERS, *PROBES)
"""What every association is reported for: trained SAE, random SAE, linear probes."""


class Bridge:
    """The inputs of one run, opened and checked, with lazily built encoders."""

    def __init__(self, cfg: BridgeConfig) -> None:
        from radinterp.sae import load_sae
        from radinterp.store import open_store

        self.cfg, self.out = cfg, Path(cfg.out)
        for path, flag in ((cfg.sae, "--sae"), (cfg.acts, "--acts")):
            if not Path(path).exists():
                raise InputError(f"{flag} {path} does not exist", f"pass an existing {flag} folder")
        self.store = open_store(cfg.acts)
        self.sae = load_sae(cfg.sae)
        self.site = check_sae_store(self.sae, self.store, cfg.site)
        self.store_ids = [str(s) for s in self.store.studies()]
        self.runs: dict[str, MethodRun] = {}
        for root in cfg.methods:
            run = load_method(root, set(self.store_ids), cfg.progress)
            if run.method in self.runs:
                raise InputError(f"two {run.method} runs given ({self.runs[run.method].root}, {root})",
                                 f"pass one {run.method} run per bridge")
            self.runs[run.method] = run
            store_data = str(self.store.manifest.get("data", {}).get("path", ""))
            if run.data and store_data and Path(run.data).resolve() != Path(store_data).resolve():
                log.warning("%s ran on %s, the store was captured from %s: the shared study ids "
                            "are compared as the same studies", root, run.data, store_data)
        pool = sorted({s for r in self.runs.values() for s in r.scores}) or self.store_ids
        self.report_ids = report_split(pool, cfg.report_fraction, cfg.seed)[1]
        rep = set(self.report_ids)
        self.select_ids = [s for s in self.store_ids if s not in rep]
        self.twins, self.twin_ids = None, []
        if cfg.twins:
            from eval.bridges.counterfactual import open_twins

            self.twins, self.twin_ids = open_twins(cfg.twins, self.sae, self.site, self.store_ids)
        self._encoders: dict | None = None

    @property
    def encoders(self) -> dict:
        """trained SAE and a random SAE of its shape and mean L0 on the store's rows."""
        if self._encoders is None:
            from radinterp.sae.baselines import mean_l0, random_like

            rows = sample_rows(self.store, self.site, self.cfg.sample_rows)
            rnd = random_like(self.sae, rows, mode=self.cfg.random_mode, seed=self.cfg.seed)
            self.l0 = {"trained": mean_l0(self.sae, rows), "random": mean_l0(rnd, rows)}
            self._encoders = {"trained": self.sae, "random": rnd}
        return self._encoders

    def studies(self):
        return self.store.open_studies(data=self.cfg.data)

    def geometry(self):
        from radinterp.models.geometry import PatchGeometry

        ad = self.store.manifest.get("config", {}).get("adapter", {})
        if not ad.get("image_size") or not ad.get("patch_size"):
            raise InputError("the store's manifest records no image_size / patch_size",
                             "recapture the store with a current radinterp")
        return lambda wh: PatchGeometry.of(wh, int(ad["image_size"]), int(ad["patch_size"]))


def _prepare(cfg: BridgeConfig, overwrite: bool) -> bool:
    """Check OUT against ``cfg``; True when the run is complete."""
    out = Path(cfg.out)
    want = json.loads(json.dumps(cfg.to_dict(), sort_keys=True))
    have = json.loads((out / "cfg.json").read_text()) if (out / "cfg.json").exists() else None
    if have is not None and have != want and not overwrite:
        diff = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
        raise FileExistsError(f"{out} holds another bridge run (config differs in {diff}); "
                              "pass --overwrite or choose another --out")
    if have is None and out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty and holds no bridge run; choose another --out "
                              "or pass --overwrite")
    if overwrite or have != want:
        for name in ("parts", "png", "bridge.json", "bridge.html", "bridge.md"):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if (out / "bridge.json").exists():
        return True
    write_json_atomic(out / "cfg.json", want)
    return False


def _summaries(b: Bridge) -> Summaries:
    path = b.out / "parts" / "summaries.safetensors"
    if path.exists():
        t, meta = load_safetensors(path)
        return Summaries(meta["study_ids"], {e: {s: t[f"{e}.{s}"].numpy() for s in SCOPES} for e in ENCODERS},
                         {p: {s: t[f"resid_{p}.{s}"].numpy() for s in SCOPES} for p in POOLS})
    s = study_summaries(b.store, b.site, b.encoders, b.cfg.progress)
    tensors = {f"{e}.{sc}": torch.from_numpy(v) for e, d in s.values.items() for sc, v in d.items()}
    tensors.update({f"resid_{p}.{sc}": torch.from_numpy(v) for p, d in s.residuals.items()
                    for sc, v in d.items()})
    save_safetensors_atomic(path, tensors, {"study_ids": s.study_ids, "l0": b.l0})
    return s


def _values(t: Target, ids: list[str]) -> np.ndarray:
    return np.array([t.values.get(s, np.nan) for s in ids], dtype=np.float64)


def _associations(b: Bridge, s: Summaries, targets: list[Target]) -> dict:
    path = b.out / "parts" / "associations.json"
    if path.exists():
        return json.loads(path.read_text())
    sel, rep = s.rows(b.select_ids), s.rows(b.report_ids)
    res: dict = {"targets": {}, "matching": {}}
    binary = [t for t in targets if t.binary]
    joint = {(p, sc): dict(zip([t.name for t in binary], joint_binary_scores(
        s.residuals[PROBES[p]][sc][sel], [_values(t, b.select_ids) for t in binary],
        s.residuals[PROBES[p]][sc][rep], b.cfg.probe_l2), strict=True)) for p in PROBES for sc in SCOPES}
    for i, t in enumerate(tqdm(targets, desc="bridge: associations", disable=not b.cfg.progress)):
        ys, yr = _values(t, b.select_ids), _values(t, b.report_ids)
        res["targets"][t.name] = {"source": t.source, "binary": t.binary, **{
            sc: {**{e: associate(s.values[e][sc][sel], ys, s.values[e][sc][rep], yr, t.binary,
                                 b.cfg.n_permutations, b.cfg.seed + i) for e in ENCODERS},
                 **{p: probe_associate(s.residuals[pool][sc][sel], ys, s.residuals[pool][sc][rep], yr,
                                       t.binary, b.cfg.n_permutations, b.cfg.seed + i, b.cfg.probe_l2,
                                       score=joint[(p, sc)].get(t.name))
                    for p, pool in PROBES.items()}}
            for sc in SCOPES}}
    for sc in SCOPES:
        for e in BASELINES:
            names = list(res["targets"])
            q = benjamini_hochberg([res["targets"][n][sc][e].get("p_perm") for n in names])
            for n, v in zip(names, q, strict=True):
                res["targets"][n][sc][e]["q_perm"] = v
    for source in sorted({t.source for t in targets}):
        group = [t for t in targets if t.source == source]
        res["matching"][source] = {}
        for sc in SCOPES:
            res["matching"][source][sc] = {}
            for e in ENCODERS:
                x = s.values[e][sc]
                pairs = match_targets(x[sel], [_values(t, b.select_ids) for t in group], x[rep],
                                      [_values(t, b.report_ids) for t in group], [t.binary for t in group],
                                      b.cfg.n_permutations, b.cfg.seed)
                for p in pairs:
                    p["target"] = group[p.pop("target")].name
                scored = [p for p in pairs if p["report"] is not None and p["perm_q95"] is not None]
                mean = (lambda k: float(np.mean([p[k] for p in scored])) if scored else None)
                res["matching"][source][sc][e] = {"pairs": pairs, "n_scored": len(scored),
                                                  "mean_report_agreement": mean("report"),
                                                  "mean_perm_agreement": mean("perm_mean"),
                                                  "mean_perm_q95": mean("perm_q95")}
    res["matrix"] = {}
    for sc in SCOPES:
        feats = sorted({r[sc]["trained"]["feature"] for r in res["targets"].values()
                        if r[sc]["trained"].get("feature") is not None})
        x = s.values["trained"][sc][rep][:, feats]  # (n_report, n_chosen)
        vals = []
        for t in targets:
            y = _values(t, b.report_ids)
            k = np.isfinite(y) & np.isfinite(x).all(1)
            a = agreement(x[k], y[k], t.binary) if k.sum() >= 3 and feats else np.full(len(feats), np.nan)
            vals.append([None if not np.isfinite(v) else round(float(v), 4) for v in a])
        res["matrix"][sc] = {"targets": [t.name for t in targets], "features": feats, "values": vals}
    write_json_atomic(path, res)
    return res


def _localisation(b: Bridge, assoc: dict, studies: list) -> dict:
    from eval.bridges.report import write_examples
    from eval.methods.masks import label_matrix, load_patch_masks

    path = b.out / "parts" / "localisation.json"
    if path.exists():
        return json.loads(path.read_text())
    match = {e: {p["target"]: p["feature"] for src in ("finding", "csr") if src in assoc["matching"]
                 for p in assoc["matching"][src]["image"][e]["pairs"]} for e in ENCODERS}
    chosen = {e: sorted(set(m.values())) for e, m in match.items()}
    maps = feature_maps(b.store, b.site, b.report_ids, b.encoders, chosen, b.cfg.progress)
    twin_ids = [s for s in b.report_ids if s in set(b.twin_ids)]
    twin_maps = (feature_maps(b.twins, b.site, twin_ids, b.encoders, chosen, b.cfg.progress)
                 if b.twins is not None else None)

    def sae_fn(e: str, prefix: str):
        col = {f: i for i, f in enumerate(chosen[e])}

        def fn(sid: str, name: str):
            feat = match[e].get(f"{prefix}:{name}")
            if feat is None:
                return f"no matched {prefix} feature"
            return maps[e][sid][col[feat]] if sid in maps[e] else "no image rows"
        return fn

    def cf_fn(sid: str, name: str):
        feat = match["trained"].get(f"finding:{name}")
        if feat is None:
            return "no matched finding feature"
        if sid not in maps["trained"] or sid not in twin_maps["trained"]:
            return "no twin in --twins" if sid in maps["trained"] else "no image rows"
        col = chosen["trained"].index(feat)
        return np.clip(maps["trained"][sid][col] - twin_maps["trained"][sid][col], 0, None)

    def method_fn(run: MethodRun):
        idx = {n: i for i, n in enumerate(run.names)}

        def fn(sid: str, name: str):
            if sid not in run.maps:
                return f"no {run.method} map for the study"
            return run.maps[sid][idx[name]] if name in idx else f"{run.method} has no such concept"
        return fn

    by_id = {s.study_id: s for s in studies}
    rep = [by_id[s] for s in b.report_ids if s in by_id]
    findings = sorted(n.split(":", 1)[1] for n in assoc["targets"] if n.startswith("finding:"))
    pos = label_matrix(rep, findings)
    masks = load_patch_masks(rep, findings, b.geometry(), pos)
    sources = {"sae": sae_fn("trained", "finding"), "random_sae": sae_fn("random", "finding"),
               **{m: method_fn(r) for m, r in b.runs.items() if r.maps}}
    if twin_maps is not None:
        sources["sae_cf"] = cf_fn
    res = {"n_report_studies": len(rep), "findings": localise(masks, pos, sources),
           "mask_missing": {f: dict(c) for f, c in masks.missing.items()}, "map_agreement": {}}
    res["winners"] = winners(res["findings"])
    if twin_maps is not None:
        from eval.bridges.counterfactual import summarise_drops, twin_drops
        from eval.recovery.recovery import RecoveryConfig

        cols = {e: {f: i for i, f in enumerate(chosen[e])} for e in ENCODERS}
        drops = twin_drops(findings, pos, [s.study_id for s in rep], match, maps, twin_maps, cols,
                           RecoveryConfig().min_drop)
        res["counterfactual"] = {"twins": b.cfg.twins, "n_report_with_twin": len(twin_ids),
                                 "min_drop": RecoveryConfig().min_drop, "findings": drops,
                                 "summary": summarise_drops(drops)}
    if "csr" in b.runs:
        csr = method_fn(b.runs["csr"])
        for c in b.runs["csr"].names:
            res["map_agreement"][c] = {e: map_correlation([s.study_id for s in rep], sae_fn(e, "csr"), csr, c)
                                       for e in ENCODERS}
    res["examples"] = write_examples(b.out / "png", rep, masks, pos, sources, b.geometry(), b.cfg.n_examples)
    write_json_atomic(path, res)
    return res


def _radiomics(b: Bridge, s: Summaries) -> dict:
    from eval.bridges.radiomics import radiomic_correlations
    from eval.methods.radiomics.usage import UsageConfig

    path = b.out / "parts" / "radiomics.json"
    if path.exists():
        return json.loads(path.read_text())
    run = b.runs.get("radiomics")
    if run is None:
        res = {"skipped": "no radiomics run given (pass its folder in --methods)"}
    else:
        ids = [sid for sid in b.report_ids if sid in run.scores]
        usage = np.stack([run.scores[sid] for sid in ids]) if ids else np.zeros((0, len(run.names)))
        rows = s.rows(ids)
        res = {e: radiomic_correlations(np.nan_to_num(s.values[e]["image"][rows]), usage, run.names,
                                        b.cfg.fdr, UsageConfig().threshold) for e in ENCODERS}
    write_json_atomic(path, res)
    return res


def run_bridge(cfg: BridgeConfig, overwrite: bool = False) -> dict:
    """Run (or resume) the bridge into ``cfg.out``; returns the contents of bridge.json."""
    from eval.bridges.report import summary_markdown, write_html

    if _prepare(cfg, overwrite):
        log.info("%s already holds this bridge run; nothing to do", cfg.out)
        return json.loads((Path(cfg.out) / "bridge.json").read_text())
    b = Bridge(cfg)
    studies = b.studies()
    s = _summaries(b)
    targets = study_targets(studies) + [t for m, r in b.runs.items() if m != "radiomics"
                                        for t in method_targets(r)]
    assoc = _associations(b, s, targets)
    loc = _localisation(b, assoc, studies)
    rad = _radiomics(b, s)
    missing = {m: sum(sid not in r.scores for sid in b.report_ids) for m, r in b.runs.items()}
    meta = load_safetensors(b.out / "parts" / "summaries.safetensors")[1]
    result = {
        "sae": cfg.sae, "acts": cfg.acts, "site": b.site, "d_sae": b.sae.d_sae,
        "l0": meta.get("l0"), "random_mode": cfg.random_mode, "n_permutations": cfg.n_permutations,
        "split": {"n_store_studies": len(b.store_ids), "n_select": len(b.select_ids),
                  "n_report": len(b.report_ids),
                  "report_from": "methods' test studies" if b.runs else "all store studies",
                  "report_ids": b.report_ids},
        "methods": {m: {"root": str(r.root), "data": r.data, "n_studies_with_maps": len(r.scores),
                        "n_not_in_store": r.n_not_in_store, "n_report_missing": missing[m],
                        "names": r.names if m != "radiomics" else len(r.names)}
                    for m, r in b.runs.items()},
        "associations": assoc, "localisation": loc, "radiomics": rad}
    if b.twins is not None:
        result["twins"] = {"root": cfg.twins, "n_studies": len(b.twins.studies()),
                           "n_in_store": len(b.twin_ids),
                           "n_report_without_twin": sum(s not in set(b.twin_ids) for s in b.report_ids)}
    write_json_atomic(b.out / "bridge.json", result)
    write_html(result, b.out / "bridge.html")
    (b.out / "bridge.md").write_text(summary_markdown(result))
    return result


__all__ = ["Bridge", "run_bridge"]
