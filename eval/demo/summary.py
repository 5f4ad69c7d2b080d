"""The demo's closing table: one headline number per stage beside its baseline, the stages
skipped with their reasons, and the path of the browser's ``index.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

Row = tuple[str, str, Any, str, Any]
"""(stage, measure, value, baseline name, baseline value)."""


def _f(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _load(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    return json.loads(p.read_text()) if p.is_file() else {}


def _eval_rows(r: dict) -> list[Row]:
    m = _load(r["metrics"])
    rec, fid = m.get("reconstruction", {}), m.get("fidelity") or {}
    rows = [("sae eval", "explained variance, held-out rows",
             _f(rec, "trained", "overall", "explained_variance"), "random SAE, same L0",
             _f(rec, "random", "overall", "explained_variance"))]
    if fid:
        rows.append(("sae eval", "CE-loss score (SAE spliced in)", _f(fid, "ce_loss_score", "sae"),
                     "random SAE", _f(fid, "ce_loss_score", "random")))
    return rows


def _quality_rows(r: dict) -> list[Row]:
    return [("report quality", f"generated-report macro-F1 ({r['n_studies']} studies)", r["macro_f1"],
             "reporter at the true prevalence", r["prevalence_f1"])]


def _recovery_rows(r: dict) -> list[Row]:
    s = _f(r, "summary", "image") or {}
    return [("recovery", f"planted finding, held-out firing F1 (image, {s.get('n_findings', 0)} "
             "findings)", _f(s, "f1", "trained"), "random SAE, same L0", _f(s, "f1", "random"))]


def _autointerp_rows(r: dict) -> list[Row]:
    rows: list[Row] = []
    p = r.get("planted")
    if p:
        rows.append(("autointerp", f"explanation names the planted finding ({p['n_matched']} "
                     "matched latents)", p["named_rate"], "random SAE's latents",
                     _f(p, "baseline", "named_rate")))
    for name, s in sorted(r.get("scorers", {}).items()):
        if not name.endswith("/planted"):
            rows.append(("autointerp", f"{name} score ({r['n_latents']} latents)", s["mean"],
                         "random SAE's latents", s["baseline"]))
    return rows


def _llm_rows(r: dict) -> list[Row]:
    """The local LLM explainer: how many of its explanations parsed, beside the random SAE's
    partners (SmolLM2 tests the plumbing; see docs/autointerp.md)."""
    rows = [("autointerp_llm", f"local LLM explanations that parsed ({r['n_latents']} latents)",
             1 - r["n_failed"] / max(r["n_latents"], 1), "a count of replies, not a feature score", None)]
    return rows + [(stage.replace("autointerp", "autointerp_llm"), what, v, base, b)
                   for stage, what, v, base, b in _autointerp_rows(r)]


def _steering_rows(r: dict) -> list[Row]:
    what = f"'{r['finding']}' mention rate, test ({r['n_test']} studies)"
    return [("steering", f"{what}: SAE feature {r['feature']}", r["sae_rate"],
             "random direction, equal norm", r["random_rate"]),
            ("steering", f"{what}: diffmean", r["diffmean_rate"], "unsteered", r["baseline_rate"])]


def _method_rows(r: dict) -> list[Row]:
    rows: list[Row] = []
    for name, v in r.items():
        m = _load(Path(v["root"]) / "metrics.json")
        if name == "csr":
            rows.append(("csr", "pointing game", _f(m, "summary", "csr", "pointing_game"),
                         "random-prototype atlas",
                         _f(m, "summary", "baseline: random-prototype atlas", "pointing_game")))
        elif name == "insight":
            rows.append(("insight", "mean AUROC", _f(m, "summary", "mean_auroc"), "shuffled labels",
                         _f(m, "summary", "mean_auroc_shuffled")))
        elif name == "radiomics":
            main = _f(m, "ablation", f"{m.get('main_persona')}/usage") or {}
            rows.append(("radiomics", f"mean AUROC ({m.get('main_persona')} persona)",
                         main.get("mean_auroc"), "shuffled labels",
                         _f(main, "baseline_shuffled_labels", "mean_auroc")))
    return rows


def _bridge_rows(r: dict) -> list[Row]:
    rows: list[Row] = []
    match = _f(r, "associations", "matching") or {}
    for kind in ("finding", "label", "csr", "insight"):
        s = _f(match, kind, "image")
        if not s:
            continue
        rows.append(("bridge", f"{kind} vs best SAE feature, held-out (image, "
                     f"{_f(s, 'trained', 'n_scored')} targets)",
                     _f(s, "trained", "mean_report_agreement"), "random SAE / permutation q95",
                     (_f(s, "random", "mean_report_agreement"), _f(s, "trained", "mean_perm_q95"))))
    return rows


ROWS: dict[str, Callable[[dict], list[Row]]] = {
    "report_quality": _quality_rows, "recovery": _recovery_rows, "sae_eval": _eval_rows,
    "autointerp": _autointerp_rows, "autointerp_llm": _llm_rows, "steering": _steering_rows, "methods": _method_rows,
    "bridge": _bridge_rows,
}
"""Stage -> the rows it contributes to the table."""


def headline_rows(summary: dict[str, Any]) -> list[Row]:
    """Every stage's headline numbers beside their baselines, in stage order."""
    rows: list[Row] = []
    for name, st in summary["stages"].items():
        if st["status"] != "skipped" and name in ROWS:
            rows += ROWS[name](st["result"])
    return rows


def _num(v: Any) -> str:
    if isinstance(v, tuple):
        return " / ".join(_num(x) for x in v)
    return "n/a" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def format_summary(summary: dict[str, Any]) -> str:
    """The table printed at the end of a run."""
    lines = [f"model {summary['model']}  site {summary['site']}  data {summary['data']}: "
             f"{summary['n_studies']} studies, SAE on {summary['n_tokens']} {summary['sae_tokens']} "
             f"tokens, d_sae={summary['d_sae']} k={summary['k']}", ""]
    rows = headline_rows(summary)
    w = max([len(f"{s}: {m}") for s, m, *_ in rows] + [10])
    lines.append(f"{'stage: measure':<{w}}  {'value':>7}  baseline")
    for stage, measure, value, bname, bvalue in rows:
        lines.append(f"{stage + ': ' + measure:<{w}}  {_num(value):>7}  {_num(bvalue)} ({bname})")
    skipped = [(n, s["reason"]) for n, s in summary["stages"].items() if s["status"] == "skipped"]
    if skipped:
        lines += ["", "skipped:"] + [f"  {n}: {why}" for n, why in skipped]
    done = {n: s for n, s in summary["stages"].items() if s["status"] != "skipped"}
    lines += ["", "stage seconds, wall / CPU: " + ", ".join(
        f"{n} {s['seconds']:.0f}/{s.get('cpu_seconds', 0):.0f}" for n, s in done.items())]
    if summary.get("recovery"):
        lines.append("recovery per finding: see recovery/recovery.json; text positions read the "
                     "teacher-forced report, which names the findings")
    if summary.get("browser"):
        lines += ["", f"feature browser: {summary['browser']}"]
    return "\n".join(lines)


__all__ = ["ROWS", "Row", "format_summary", "headline_rows"]
