"""``metrics.html``: the eval's numbers as tables and plotly figures, trained beside random.

plotly's script is embedded (``include_plotlyjs=True``), so the page opens offline.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

RECON_KEYS = ("explained_variance", "mse", "cosine", "l2_ratio", "l0")


def _f(x: Any) -> str:
    if x is None:
        return "-"
    return f"{x:.4g}" if isinstance(x, float) else html.escape(str(x))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_f(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def recon_rows(m: dict[str, Any]) -> list[list[Any]]:
    """(group, metric, trained, random) rows: overall and per token kind."""
    t, r = m["reconstruction"]["trained"], m["reconstruction"]["random"]
    rows = []
    for group in ["overall", *t["by_kind"]]:
        a = t["overall"] if group == "overall" else t["by_kind"][group]
        b = r["overall"] if group == "overall" else r["by_kind"][group]
        for key in RECON_KEYS:
            rows.append([group, key, a.get(key), b.get(key)])
        rows.append([group, "rows", a.get("rows"), b.get("rows")])
    return rows


def _figures(m: dict[str, Any]):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    t, r = m["reconstruction"]["trained"], m["reconstruction"]["random"]
    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "explained variance per Matryoshka prefix", "latent frequency (log10)",
        "decoder max |cos| to another latent"))
    for name, d, color in (("trained", t, "#1f77b4"), ("random", r, "#ff7f0e")):
        ev = sorted(d["overall"]["explained_variance_prefix"].items(), key=lambda kv: int(kv[0]))
        fig.add_trace(go.Scatter(x=[w for w, _ in ev], y=[v for _, v in ev], name=name, legendgroup=name,
                                 mode="lines+markers", marker={"color": color}), row=1, col=1)
        for col, key, sub in ((2, "firing", "log10_freq_hist"),
                              (3, "decoder_similarity", "max_abs_cos_hist")):
            h = d[key][sub]
            mids = [(a + b) / 2 for a, b in zip(h["edges"], h["edges"][1:])]
            fig.add_trace(go.Bar(x=mids, y=h["counts"], name=name, legendgroup=name,
                                 showlegend=False, marker={"color": color}, opacity=0.7),
                          row=1, col=col)
    fig.update_layout(barmode="overlay", height=420, width=1300)
    return fig


def write_html(m: dict[str, Any], path: str | Path) -> Path:
    """Write the report; plotly embedded (no network needed to open it)."""
    path = Path(path)
    parts = [f"<h1>SAE eval: {html.escape(m['sae'])}</h1>",
             f"<p>site {html.escape(m['site'])}, model {html.escape(str(m['model']))}, d_in {m['d_in']}, "
             f"d_sae {m['d_sae']}, rows {m['rows']['n']} ({m['rows']['mode']}), "
             f"{m['rows']['studies']} studies. Random: {html.escape(m['random_baseline']['what'])}.</p>",
             "<h2>Reconstruction and sparsity</h2>",
             _table(["tokens", "metric", "trained", "random"], recon_rows(m))]
    ft, fr = m["reconstruction"]["trained"]["firing"], m["reconstruction"]["random"]["firing"]
    parts.append(_table(["", "dead", "dense (>10%)", "decoder max|cos| mean"], [
        ["trained", ft["dead"], ft["dense"],
         m["reconstruction"]["trained"]["decoder_similarity"]["max_abs_cos_mean"]],
        ["random", fr["dead"], fr["dense"],
         m["reconstruction"]["random"]["decoder_similarity"]["max_abs_cos_mean"]]]))
    fid = m.get("fidelity")
    if fid:
        parts.append(f"<h2>Fidelity ({fid['report_tokens']} report tokens, {fid['studies']} studies)</h2>")
        rows = [[k, fid["ce_loss"][k], fid["kl"].get(k), fid["ce_loss_score"].get(k),
                 fid["kl_score"].get(k)] for k in fid["ce_loss"]]
        parts.append(_table(["forward", "CE loss", "KL to clean", "CE-loss score", "KL score"], rows))
    con = m.get("concepts")
    if con and con.get("labels"):
        parts.append(f"<h2>k-sparse probing ({con['held_out']} held-out studies)</h2>")
        rows = []
        for label, row in con["labels"].items():
            for enc in ("trained", "random"):
                ks = row[enc]["k_sparse"]
                rows.append([label, enc, row["positives"], *[ks[k]["auroc"] for k in ("1", "2", "5")],
                             row[enc]["absorption"]["n_split"]])
        parts.append(_table(["label", "SAE", "positives", "AUROC k=1", "k=2", "k=5", "split over"], rows))
    fig_html = _figures(m).to_html(full_html=False, include_plotlyjs=True)
    style = "<style>table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>SAE eval</title>{style}</head>"
            f"<body>{''.join(parts)}{fig_html}<details><summary>metrics.json</summary><pre>"
            f"{html.escape(json.dumps(m, indent=1)[:200000])}</pre></details></body></html>")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(page)
    tmp.replace(path)
    return path


__all__ = ["recon_rows", "write_html"]
