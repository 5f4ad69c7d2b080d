"""A feature's bridge matches, from a ``radinterp bridge`` run (bridge.json, png/).

Per feature: the targets (CSR concept, INSIGHT finding, planted finding, label) the Hungarian
matching paired it with on the selection studies, with the held-out agreement (AUROC for 0/1
targets, Spearman for scores) beside the random SAE's feature matched to the same target and
the permutation 95th percentile; the targets it is the single best feature for; for a matched
finding, the localisation on the report studies (pointing game, mask share, IoU) beside the
random SAE, CSR, INSIGHT and chance; for a matched CSR concept, the map rank correlation; the
radiomic features it tracks (BH-significant) beside the random SAE's count; and the example
maps side by side (``eval.bridges.report.example_figures``: SAE, random SAE, CSR, INSIGHT,
mask) of the studies whose finding it is matched to. A feature with no match says so.
"""

from __future__ import annotations

import shutil
from html import escape
from pathlib import Path

from eval.bridges.report import _headline, example_figures
from eval.browser.runs import Runs

PNG = "bridge_png"
"""Folder of the browser holding the bridge's example maps (copied from the bridge's png/)."""
ORDER = ("sae", "random_sae", "csr", "insight", "mask")
"""Order of the maps and localisation rows: the feature, its baseline, the methods, the truth."""


def _ordered(d: dict) -> dict:
    return {k: d[k] for k in sorted(d, key=lambda k: ORDER.index(k) if k in ORDER else len(ORDER))}


def _f(x: float | None, nd: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{nd}f}"


def matches(bridge: dict, latent: int) -> list[dict]:
    """The Hungarian pairs of ``latent`` (source, scope, target, trained pair, random pair)."""
    out = []
    for src, by_scope in bridge["associations"]["matching"].items():
        for scope, d in by_scope.items():
            rand = {p["target"]: p for p in d["random"]["pairs"]}
            out += [{"source": src, "scope": scope, "target": p["target"], "trained": p,
                     "random": rand.get(p["target"])}
                    for p in d["trained"]["pairs"] if p["feature"] == latent]
    return out


def matched_features(bridge: dict) -> set[int]:
    """Every feature the Hungarian matching paired with some target (any source, any scope)."""
    return {p["feature"] for by in bridge["associations"]["matching"].values()
            for d in by.values() for p in d["trained"]["pairs"]}


def best_for(bridge: dict, latent: int) -> list[tuple[str, str, dict, dict]]:
    """(target, scope, trained, random) where ``latent`` is the trained SAE's best feature."""
    return [(t, scope, v[scope]["trained"], v[scope]["random"])
            for t, v in bridge["associations"]["targets"].items() for scope in ("image", "report")
            if scope in v and v[scope]["trained"].get("feature") == latent]


def _matched_names(bridge: dict, latent: int, source: str) -> list[str]:
    """Names (without ``source:``) of the ``source`` targets matched to ``latent`` on image positions."""
    return [m["target"].split(":", 1)[1] for m in matches(bridge, latent)
            if m["source"] == source and m["scope"] == "image"]


def _matches_table(ms: list[dict]) -> str:
    rows = "".join(
        f"<tr><td>{escape(m['target'])}</td><td>{m['scope']}</td>"
        f'<td class="num">{_f(m["trained"]["report"])}</td>'
        f'<td class="num">{_f((m["random"] or {}).get("report"))} '
        f'<span class="base">(f{(m["random"] or {}).get("feature", "–")})</span></td>'
        f'<td class="num">{_f(m["trained"].get("perm_q95"))}</td>'
        f'<td class="num">{_f(m["trained"].get("select"))}</td></tr>' for m in ms)
    return ("<table><tr><th>target</th><th>positions</th><th>held-out agreement</th>"
            "<th>random SAE's match</th><th>permutation 95th pct</th><th>on selection</th></tr>"
            f"{rows}</table>")


def _best_table(best: list[tuple[str, str, dict, dict]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(t)}</td><td>{scope}</td><td class=\"num\">{_f(_headline(tr))}</td>"
        f'<td class="num">{_f(_headline(rn))} <span class="base">(f{rn.get("feature")})</span></td>'
        f'<td class="num">{_f(tr.get("perm_q95"))}</td><td class="num">{_f(tr.get("q_perm"))}</td></tr>'
        for t, scope, tr, rn in best)
    return ("<table><tr><th>target</th><th>positions</th><th>held-out AUROC / Spearman</th>"
            "<th>random SAE's best</th><th>permutation 95th pct</th><th>q (BH)</th></tr>"
            f"{rows}</table>")


def _localisation(bridge: dict, findings: list[str]) -> str:
    loc = bridge["localisation"]["findings"]
    rows = []
    for f in findings:
        v = loc.get(f)
        if not v or not v["n_with_mask"]:
            continue
        for name, s in _ordered(v["sources"]).items():
            rows.append(f"<tr><td>{escape(f)}</td><td>{escape(name)}</td>"
                        f'<td class="num">{_f(s["pointing_game"], 2)}</td>'
                        f'<td class="num">{_f(s["mask_share"], 2)}</td>'
                        f'<td class="num">{_f(s.get("iou_matched"), 2)}</td>'
                        f'<td class="num">{_f(v["chance_mask_share"], 2)}</td>'
                        f'<td class="num">{s["n_scored"]} of {v["n_with_mask"]}</td></tr>')
    if not rows:
        return ""
    return ("<h3>Localisation on the report studies with a mask</h3><table><tr><th>finding</th>"
            "<th>map</th><th>pointing game</th><th>mask share</th><th>IoU at mask area</th>"
            "<th>chance share</th><th>studies scored</th></tr>" + "".join(rows) + "</table>")


def _map_agreement(bridge: dict, concepts: list[str]) -> str:
    agree = bridge["localisation"].get("map_agreement") or {}
    rows = "".join(
        f"<tr><td>{escape(c)}</td><td class=\"num\">{_f(agree[c]['trained']['spearman'], 2)} "
        f"({agree[c]['trained']['n']})</td><td class=\"num\">{_f(agree[c]['random']['spearman'], 2)} "
        f"({agree[c]['random']['n']})</td></tr>" for c in concepts if c in agree)
    return ("<h3>Map agreement with the CSR concept (report studies)</h3><table><tr><th>concept</th>"
            "<th>Spearman of the maps (studies)</th><th>random SAE's match (studies)</th></tr>"
            f"{rows}</table>") if rows else ""


def radiomic_pairs(bridge: dict, latent: int) -> list[dict]:
    """The BH-significant radiomic features of ``latent`` (strongest first)."""
    return ((bridge.get("radiomics") or {}).get("trained", {}).get("features") or {}).get(str(latent), [])


def _radiomics(bridge: dict, latent: int) -> str:
    rad = bridge.get("radiomics") or {}
    if "skipped" in rad:
        return f'<h3>Radiomic features</h3><p class="none">{escape(rad["skipped"])}</p>'
    tr, rn = rad.get("trained", {}), rad.get("random", {})
    base = (f'<span class="base">(random SAE: {rn.get("n_sae_features_with_any", 0)} of '
            f'{rn.get("n_sae_features_tested", 0)} features have any, {rn.get("n_significant", 0)} '
            f"pairs; trained: {tr.get('n_sae_features_with_any', 0)} of "
            f"{tr.get('n_sae_features_tested', 0)}, {tr.get('n_significant', 0)} pairs)</span>")
    pairs = radiomic_pairs(bridge, latent)
    if not pairs:
        return f'<h3>Radiomic features</h3><p class="none">none significant (BH q &lt; {tr.get("fdr")}) {base}</p>'
    rows = "".join(f"<tr><td>{escape(p['radiomic'])}</td><td class=\"num\">{_f(p['rho'], 2)}</td>"
                   f"<td class=\"num\">{_f(p['q'])}</td><td class=\"num\">{_f(p['fingerprint_share'], 2)}"
                   "</td></tr>" for p in pairs)
    return ("<h3>Radiomic features it tracks (report studies, BH-significant)</h3><p>" + base
            + "</p><table><tr><th>radiomic feature</th><th>Spearman</th><th>q</th>"
            f"<th>share of fingerprints</th></tr>{rows}</table>")


def bridge_section(runs: Runs, latent: int) -> str:
    """The feature page's bridge section (see the module docstring)."""
    if runs.bridge is None:
        return ('<h2>Bridge</h2><p class="none">no bridge run given to the browser '
                "(radinterp browse --bridge DIR)</p>")
    b = runs.bridge
    ms, best = matches(b, latent), best_for(b, latent)
    if not ms and not best and not radiomic_pairs(b, latent):
        return ('<h2>Bridge</h2><p class="none">no bridge match: the matching paired this feature '
                "with no CSR concept, INSIGHT finding, planted finding or label, it is no target's "
                "best feature, and it tracks no radiomic feature</p>")
    findings, concepts = _matched_names(b, latent, "finding"), _matched_names(b, latent, "csr")
    maps = [ex for ex in b["localisation"].get("examples", []) if ex["finding"] in findings]
    figs = "".join(example_figures({**ex, "images": _ordered(ex["images"])}, lambda file: f"../{PNG}/{file}")
                   for ex in maps)
    sp = b["split"]
    return ('<h2>Bridge</h2><div class="panel">'
            f"<p>Features chosen on {sp['n_select']} selection studies, every number from "
            f"{sp['n_report']} report studies; the random SAE has the same shape and L0 "
            f"({escape(str(b.get('random_mode')))}); {b.get('n_permutations')} permutations.</p>"
            + (f"<h3>Matched (one-to-one) targets</h3>{_matches_table(ms)}" if ms else
               '<p class="none">the one-to-one matching paired it with no target</p>')
            + (f"<h3>Targets it is the best single feature for</h3>{_best_table(best)}" if best else "")
            + _localisation(b, findings) + _map_agreement(b, concepts) + _radiomics(b, latent)
            + (f"<h3>Maps side by side (report studies)</h3>{figs}" if figs else "") + "</div>")


def bridge_cell(runs: Runs, latent: int) -> str:
    """Index cell: the feature's matched targets, held-out agreement beside the random SAE's."""
    ms = matches(runs.bridge, latent) if runs.bridge else []
    if not ms:
        return "<td></td>"
    ms = sorted(ms, key=lambda m: -(m["trained"]["report"] or 0))
    text = "; ".join(f"{escape(m['target'])} ({m['scope']}) {_f(m['trained']['report'], 2)} "
                     f'<span class="base">(random {_f((m["random"] or {}).get("report"), 2)})</span>'
                     for m in ms[:3])
    return f'<td data-sort="{ms[0]["trained"]["report"] or 0}">{text}</td>'


def bridge_labels(runs: Runs, latent: int) -> list[str]:
    """Finding and label targets matched to ``latent`` (either positions)."""
    if runs.bridge is None:
        return []
    return [m["target"].split(":", 1)[1] for m in matches(runs.bridge, latent)
            if m["source"] in ("finding", "label")]


def bridge_headline(runs: Runs) -> str:
    if runs.bridge is None:
        return ""
    items = []
    for src, by_scope in runs.bridge["associations"]["matching"].items():
        for scope, d in by_scope.items():
            tr, rn = d["trained"], d["random"]
            items.append(f"{escape(src)} ({scope}): {_f(tr.get('mean_report_agreement'))} "
                         f'<span class="base">(random SAE {_f(rn.get("mean_report_agreement"))}, '
                         f"permutation 95th pct {_f(tr.get('mean_perm_q95'))}; "
                         f"{tr.get('n_scored', len(tr['pairs']))} pairs)</span>")
    return ("<li>bridge, mean held-out agreement of the matched pairs: " + "; ".join(items)
            + "</li>")


def copy_maps(runs: Runs, out: Path) -> None:
    """The bridge's example maps into ``out/bridge_png`` (the pages load them as files)."""
    if runs.bridge_dir is not None and (runs.bridge_dir / "png").is_dir():
        shutil.copytree(runs.bridge_dir / "png", out / PNG, dirs_exist_ok=True)


__all__ = ["PNG", "best_for", "bridge_cell", "bridge_headline", "bridge_labels", "bridge_section",
           "copy_maps", "matched_features", "matches", "radiomic_pairs"]
