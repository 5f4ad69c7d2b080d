"""``bridge.html`` (plotly embedded, opens offline) and the example overlays (PNGs).

Sections: the target x feature matrix (report split), each target's held-out association
beside the random SAE and the permutation 95th percentile, the matched pairs, the localisation
side by side, and example report studies with every source's map over the radiograph.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np

from eval.methods.io import map_name


def write_examples(out: Path, studies: list, masks, positives: np.ndarray, sources: dict,
                   geometry, n: int) -> list[dict]:
    """Overlay PNGs of the first ``n`` (study, finding) pairs with a mask: every source's map
    and the mask over the radiograph; returns [{study_id, finding, images: {source: file}}]."""
    from radinterp.models.geometry import image_size_of
    from radinterp.overlay import write_overlay

    target = masks.target()
    done: list[dict] = []
    for i, study in enumerate(studies):
        if len(done) >= n:
            break
        js = [j for j in np.flatnonzero(positives[i]) if masks.known[i, j] and target[i, j].any()]
        if not js or study.frontal is None:
            continue
        n_maps = [sum(not isinstance(fn(study.study_id, masks.findings[j]), str) for fn in sources.values())
                  for j in js]
        j = int(js[int(np.argmax(n_maps))])  # the finding the most sources have a map of
        f = masks.findings[j]
        geo = geometry(image_size_of(study.frontal))
        stem = f"{map_name(study.study_id)}-{f}"
        imgs = {"mask": write_overlay(out / f"{stem}-mask.png", study.frontal,
                                      target[i, j].astype(float), geo, cmap="red", alpha=0.45).name}
        for name, fn in sources.items():
            m = fn(study.study_id, f)
            if not isinstance(m, str):
                imgs[name] = write_overlay(out / f"{stem}-{name}.png", study.frontal, m, geo).name
        done.append({"study_id": study.study_id, "finding": f, "images": imgs})
    return done


def _fmt(v, nd: int = 3) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def _headline(r: dict) -> float | None:
    return r.get("auroc") if r.get("auroc") is not None else r.get("spearman")


def _bars(result: dict, scope: str):
    import plotly.graph_objects as go

    t = result["associations"]["targets"]
    names = list(t)
    fig = go.Figure()
    for e, label, colour in (("trained", "trained SAE", "#1f77b4"), ("random", "random SAE", "#ff7f0e"),
                             ("probe", "linear probe (mean pool)", "#2ca02c"),
                             ("probe_max", "linear probe (max pool)", "#98df8a")):
        fig.add_bar(x=names, y=[_headline(t[n][scope].get(e, {})) for n in names], name=label,
                    marker_color=colour)
    fig.add_scatter(x=names, y=[t[n][scope]["trained"].get("perm_q95") for n in names],
                    mode="markers", name="permutation 95th pct", marker={"symbol": "line-ew-open",
                                                                         "size": 14, "color": "black"})
    fig.update_layout(title=f"{scope} positions: best feature (chosen on selection), held-out "
                            "AUROC (0/1 targets) or Spearman (scores)", barmode="group", height=420)
    return fig


def _matrix(result: dict):
    import plotly.graph_objects as go

    m = result["associations"].get("matrix", {}).get("image")
    if not m or not m["values"]:
        return None
    fig = go.Figure(go.Heatmap(z=m["values"], x=[str(f) for f in m["features"]], y=m["targets"],
                               colorscale="RdBu", zmid=0, zmin=-1, zmax=1))
    fig.update_layout(title="target x SAE feature agreement (image positions, report split; "
                            "2*AUROC-1 or Spearman)", height=max(400, 16 * len(m["targets"])))
    fig.update_xaxes(type="category", title="SAE feature")
    return fig


def _localisation(result: dict):
    import plotly.graph_objects as go

    loc = result["localisation"]["findings"]
    names = [f for f in loc if loc[f]["n_with_mask"]]
    fig = go.Figure()
    srcs = sorted({s for f in names for s in loc[f]["sources"]})
    for s in srcs:
        fig.add_bar(x=names, y=[loc[f]["sources"][s]["pointing_game"] for f in names], name=s)
    fig.update_layout(title="pointing game per finding, report split (same studies per finding)",
                      barmode="group", height=420)
    return fig


def _pairs_table(result: dict) -> str:
    rows = []
    for src, d in result["associations"]["matching"].items():
        for sc, e in d.items():
            tr, rn = e["trained"], e["random"]
            pairs = ", ".join(f"{html.escape(p['target'])}&rarr;{p['feature']} ({_fmt(p['report'], 2)})"
                              for p in tr["pairs"])
            rows.append(f"<tr><td>{src}</td><td>{sc}</td><td>{tr.get('n_scored', len(tr['pairs']))}</td>"
                        f"<td>{_fmt(tr['mean_report_agreement'])}</td>"
                        f"<td>{_fmt(rn['mean_report_agreement'])}</td>"
                        f"<td>{_fmt(tr.get('mean_perm_q95'))}</td><td style='font-size:80%'>{pairs}</td></tr>")
    return ("<table border=1 cellpadding=3><tr><th>source</th><th>scope</th><th>pairs scored</th>"
            "<th>trained: mean held-out agreement</th><th>random SAE</th><th>permutation 95th pct</th>"
            "<th>pairs (target&rarr;feature, held-out agreement)</th></tr>" + "".join(rows) + "</table>")


def example_figures(ex: dict, src) -> str:
    """One example study's maps side by side (SAE, random SAE, CSR, INSIGHT, mask), each an
    ``<img>`` whose address is ``src(file)`` (a data: URI in bridge.html, a file elsewhere)."""
    cells = [f"<figure style='display:inline-block;margin:4px'><img width=200 src='{html.escape(src(file))}' "
             f"alt='{html.escape(name)} map'><figcaption>{html.escape(name)}</figcaption></figure>"
             for name, file in ex["images"].items()]
    return f"<h4>{html.escape(ex['study_id'])}: {html.escape(ex['finding'])}</h4>" + "".join(cells)


def _examples(result: dict, root: Path) -> str:
    def data_uri(file: str) -> str:
        return "data:image/png;base64," + base64.b64encode((root / "png" / file).read_bytes()).decode()

    parts = [example_figures(ex, data_uri) for ex in result["localisation"].get("examples", [])]
    return "".join(parts) or "<p>no report-split study with a mask</p>"


def _md_table_html(lines: list[str], title: str) -> str:
    """The markdown lines of one table (and its caption lines) as an HTML table."""
    if not lines:
        return ""
    text = [ln for ln in lines if ln and not ln.startswith("|")]
    rows = [ln.strip("|").split("|") for ln in lines if ln.startswith("|") and not ln.startswith("|---")]
    cell = (lambda tag, c: f"<{tag}>{html.escape(c.strip().strip('*'))}</{tag}>")
    body = "".join("<tr>" + "".join(cell("th" if i == 0 else "td", c) for c in r) + "</tr>"
                   for i, r in enumerate(rows))
    return (f"<h2>{html.escape(title)}</h2>" + "".join(f"<p>{html.escape(t)}</p>" for t in text)
            + f"<table border=1 cellpadding=3>{body}</table>")


def write_html(result: dict, path: str | Path) -> Path:
    """Write bridge.html with plotly.js inline (no network request when opened)."""
    path = Path(path)
    figs = [f for f in (_matrix(result), _bars(result, "image"), _bars(result, "report"),
                        _localisation(result)) if f is not None]
    body = [fig.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)]
    sp = result["split"]
    head = (f"<h1>radinterp bridge</h1><p>SAE {html.escape(result['sae'])} at {result['site']} "
            f"(d_sae {result['d_sae']}); selection {sp['n_select']} studies, report {sp['n_report']} "
            f"({html.escape(sp['report_from'])}); random SAE: same shape and mean L0 "
            f"({result['random_mode']}); {result['n_permutations']} permutations.</p>")
    text = ("<html><head><meta charset='utf-8'><title>radinterp bridge</title></head><body>" + head
            + body[0] + "<h2>Matched pairs (Hungarian, chosen on selection)</h2>" + _pairs_table(result)
            + "".join(body[1:]) + _md_table_html(_winner_lines(result["localisation"].get("winners")),
                                                 "Which source localises which finding best")
            + _md_table_html(_counterfactual_lines(result["localisation"].get("counterfactual")),
                             "Counterfactual: the matched feature on the study vs its healthy twin")
            + "<h2>Example report studies</h2><p>sae_cf: the SAE feature's map on the study minus "
            "on its healthy twin (with --twins)</p>" + _examples(result, path.parent)
            + "</body></html>")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


__all__ = ["example_figures", "summary_markdown", "write_examples", "write_html"]


def summary_markdown(result: dict) -> str:
    """Markdown tables of bridge.json's headline numbers (written as OUT/bridge.md)."""
    sp = result["split"]
    lines = [f"selection {sp['n_select']} / report {sp['n_report']} studies "
             f"({sp['report_from']}); random SAE L0 {result['l0']['random']:.2f} vs trained "
             f"{result['l0']['trained']:.2f} ({result['random_mode']}); {result['n_permutations']} "
             "permutations", "",
             "| source | scope | targets scored | held-out, trained | random SAE | linear probe "
             "(mean / max pool) | permutation 95th pct | q < 0.05 trained / random / probe (mean) "
             "| matching agreement trained / random / permutation 95th pct |",
             "|---|---|---|---|---|---|---|---|---|"]
    t, match = result["associations"]["targets"], result["associations"]["matching"]
    for src in sorted({v["source"] for v in t.values()}):
        for sc in ("image", "report"):
            rows = [v[sc] for v in t.values() if v["source"] == src and _headline(v[sc]["trained"]) is not None]
            mean = (lambda e, k=None: float(np.mean([(r[e].get(k) if k else _headline(r[e])) or 0 for r in rows])))
            sig = (lambda e: sum((r[e].get("q_perm") or 1) < 0.05 for r in rows if e in r))
            m = match.get(src, {}).get(sc, {})
            lines.append(f"| {src} | {sc} | {len(rows)} | {_fmt(mean('trained') if rows else None)} | "
                         f"{_fmt(mean('random') if rows else None)} | "
                         f"{_probe_mean(rows, 'probe')} / {_probe_mean(rows, 'probe_max')} | "
                         f"{_fmt(mean('trained', 'perm_q95') if rows else None)} | "
                         f"{sig('trained')} / {sig('random')} / {sig('probe')} | "
                         f"{_fmt(m.get('trained', {}).get('mean_report_agreement'))} / "
                         f"{_fmt(m.get('random', {}).get('mean_report_agreement'))} / "
                         f"{_fmt(m.get('trained', {}).get('mean_perm_q95'))} |")
    loc = result["localisation"]["findings"]
    srcs = sorted({s for v in loc.values() for s in v["sources"]})
    lines += ["", "| finding | studies with mask | " + " | ".join(f"pointing {s}" for s in srcs)
              + " | " + " | ".join(f"mask share {s}" for s in srcs) + " | chance share | "
              + " | ".join(f"IoU {s}" for s in srcs) + " |",
              "|---" * (2 + 3 * len(srcs) + 1) + "|"]
    for f, v in loc.items():
        if not v["n_with_mask"]:
            continue
        lines.append(f"| {f} | {v['n_with_mask']} | "
                     + " | ".join(_fmt(v["sources"][s]["pointing_game"], 2) for s in srcs) + " | "
                     + " | ".join(_fmt(v["sources"][s]["mask_share"], 2) for s in srcs)
                     + f" | {_fmt(v['chance_mask_share'], 2)} | "
                     + " | ".join(_fmt(v["sources"][s].get("iou_matched"), 2) for s in srcs) + " |")
    lines += _winner_lines(result["localisation"].get("winners"))
    lines += _counterfactual_lines(result["localisation"].get("counterfactual"))
    agree = result["localisation"].get("map_agreement", {})
    if agree:
        lines += ["", "| CSR concept | map Spearman, matched SAE feature (studies) | random SAE (studies) |",
                  "|---|---|---|"]
        for c, d in agree.items():
            lines.append(f"| {c} | {_fmt(d['trained']['spearman'], 2)} ({d['trained']['n']}) | "
                         f"{_fmt(d['random']['spearman'], 2)} ({d['random']['n']}) |")
    rad = result["radiomics"]
    if "skipped" in rad:
        lines += ["", f"radiomics: {rad['skipped']}"]
    else:
        lines += ["", "| radiomics (report split) | tests | significant pairs (BH) | SAE features with any |",
                  "|---|---|---|---|"]
        for e in ("trained", "random"):
            r = rad[e]
            lines.append(f"| {e} SAE | {r['n_tests']} | {r['n_significant']} | "
                         f"{r.get('n_sae_features_with_any', 0)} of {r['n_sae_features_tested']} |")
    return "\n".join(lines) + "\n"


def _probe_mean(rows: list[dict], key: str) -> str:
    """Mean held-out probe AUROC / Spearman over the rows it scored (count when fewer)."""
    vals = [_headline(r[key]) for r in rows if key in r and _headline(r[key]) is not None]
    if not vals:
        return "-"
    return _fmt(float(np.mean(vals))) + ("" if len(vals) == len(rows) else f" ({len(vals)})")


def _winner_lines(w: dict | None) -> list[str]:
    """Per finding, the source(s) localising it best, and each source's mean over common findings."""
    if not w or not w["per_finding"]:
        return []
    metrics = list(w["mean"])
    out = ["", "| finding | " + " | ".join(f"best {m}" for m in metrics) + " |", "|---" * (1 + len(metrics)) + "|"]
    for f, d in w["per_finding"].items():
        out.append(f"| {f} | " + " | ".join(", ".join(d[m]) if d[m] else "-" for m in metrics) + " |")
    out.append("| **findings won** | " + " | ".join(
        ", ".join(f"{s} {n}" for s, n in sorted(w["wins"][m].items(), key=lambda kv: -kv[1]))
        for m in metrics) + " |")
    out.append("| **mean over common findings** | " + " | ".join(
        ", ".join(f"{s} {_fmt(v, 2)}" for s, v in w["mean"][m].items() if s != "n_common")
        + f" ({w['mean'][m]['n_common']})" for m in metrics) + " |")
    return out


def _counterfactual_lines(cf: dict | None) -> list[str]:
    """Per finding: the matched feature's drop rate, study vs healthy twin, trained vs random."""
    if not cf:
        return []
    out = ["", f"counterfactual: matched feature falls by >= {cf['min_drop']:.0%} on the healthy twin "
           f"({cf['n_report_with_twin']} report studies with a twin)", "",
           "| finding | pairs with finding | drop rate trained | random SAE | pairs without (baseline) "
           "| drop rate trained | random SAE |", "|---|---|---|---|---|---|---|"]
    for f, v in cf["findings"].items():
        t, r = v.get("trained", {}), v.get("random", {})
        if "positive" not in t:
            continue
        cell = (lambda d, side: _fmt(d.get(side, {}).get("drop_rate"), 2))
        out.append(f"| {f} | {t['positive']['n_pairs']} | {cell(t, 'positive')} | {cell(r, 'positive')} | "
                   f"{t['negative']['n_pairs']} | {cell(t, 'negative')} | {cell(r, 'negative')} |")
    sm = cf["summary"]
    out.append(f"| **mean ({sm['n_findings']} findings)** | | {_fmt(sm['trained']['positive'], 2)} | "
               f"{_fmt(sm['random']['positive'], 2)} | | {_fmt(sm['trained']['negative'], 2)} | "
               f"{_fmt(sm['random']['negative'], 2)} |")
    return out
