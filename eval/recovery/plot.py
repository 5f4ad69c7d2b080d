"""Tables and plots of recovery results: the findings table and the curve's margins."""

from __future__ import annotations

import json
from pathlib import Path

KNOBS = ("n_studies", "tokens", "d_sae", "k", "passes", "layer")
"""Settings of a curve point that the plot puts on an x axis."""


def _axis_order(value) -> tuple:
    """Sort key of a knob's value: numbers by size (400 before 1200), then names."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def _f(x, nd: int = 2) -> str:
    return "  -  " if x is None or x != x else f"{x:.{nd}f}"


def format_findings(result: dict, scope: str) -> list[str]:
    """Lines of the per-finding table of one scope: probe, trained SAE, random SAE."""
    s = result["scopes"][scope]
    lines = [f"{scope} positions ({s['n_studies']} studies, held-out half scored; L0 trained "
             f"{s['l0_trained']:.1f}, random {s['l0_random']:.1f})",
             f"{'finding':<24} {'pos':>4}  probe AUC  | AUROC trn/rnd | F1 trn/rnd  | "
             "mask share trn/rnd (area) | falls trn/rnd"]
    for r in s["findings"]:
        t, q = r["trained"], r["random"]
        mask = (f"{_f(t.get('mask_share'))}/{_f(q.get('mask_share'))} ({_f(t.get('mask_area'))})"
                if "mask_share" in t else "-")
        falls = f"{_f(t.get('cf_drop'))}/{_f(q.get('cf_drop'))}" if "cf_drop" in t else "-"
        lines.append(f"{r['finding']:<24} {r['n_pos_held']:>4}  {_f(r['probe']['auroc']):>9}  | "
                     f"{_f(t['auroc'])}/{_f(q['auroc'])}     | {_f(t['f1'])}/{_f(q['f1'])} | "
                     f"{mask:<25} | {falls}")
    return lines


def format_summary_lines(result: dict) -> list[str]:
    s = result["summary"]
    lines = [f"findings the probe sees on image positions (held-out AUROC >= 0.9): "
             f"{', '.join(s['probe_sees']) or 'none'}"]
    for scope in result["scopes"]:
        d = s.get(scope, {})
        parts = [f"{k} {_f(d[k]['trained'])} vs {_f(d[k]['random'])} (margin {_f(d[k]['margin'])})"
                 for k in ("f1", "auroc", "mask_share", "cf_drop") if d.get(k, {}).get("trained") is not None]
        lines.append(f"  {scope}: " + "; ".join(parts))
    return lines


def load_points(root: str | Path) -> list[dict]:
    from eval.recovery.curve import RESULT_FILE

    return [json.loads(p.read_text()) for p in sorted(Path(root).glob(f"*/{RESULT_FILE}"))]


def curve_rows(points: list[dict]) -> list[dict]:
    """One flat row per point: its knobs and the image/text margins over random."""
    rows = []
    for r in points:
        row = {k: r["point"][k] for k in KNOBS}
        row["calibrate"] = r["point"].get("calibrate", True)
        row["name"] = r["name"]
        for scope in ("image", "text"):
            d = r["summary"].get(scope, {})
            for key in ("f1", "auroc", "mask_share", "cf_drop"):
                v = d.get(key, {})
                row[f"{scope}_{key}_trained"] = v.get("trained")
                row[f"{scope}_{key}_random"] = v.get("random")
                row[f"{scope}_{key}_margin"] = v.get("margin")
        row["n_seen"] = len(r["summary"]["probe_sees"])
        row["l0_own"] = r.get("l0_own_threshold")
        row["train_tokens"] = r.get("train_tokens")
        row["train_s"] = r.get("seconds", {}).get("train")
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    cols = ["name", "train_tokens", "l0_own", "image_f1_trained", "image_f1_random", "image_f1_margin",
            "image_mask_share_trained", "image_mask_share_random", "image_cf_drop_trained",
            "image_cf_drop_random", "image_auroc_margin", "text_f1_margin", "train_s"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=lambda r: -(r["image_f1_margin"] or -9)):
        out.append("| " + " | ".join(
            str(r[c]) if isinstance(r[c], (str, int)) else _f(r[c]) for c in cols) + " |")
    return "\n".join(out)


def plot_curve(rows: list[dict], out: str | Path) -> list[Path]:
    """margin over random (image F1, mask share, counterfactual) against each knob: plotly HTML,
    plus a PNG when kaleido is installed."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    out = Path(out)
    fig = make_subplots(rows=1, cols=len(KNOBS), subplot_titles=KNOBS, shared_yaxes=True)
    metrics = (("image_f1_margin", "F1 margin"), ("image_mask_share_margin", "mask share margin"),
               ("image_cf_drop_margin", "falls margin"))
    for c, knob in enumerate(KNOBS, 1):
        for m, (key, label) in enumerate(metrics):
            pts = sorted((r for r in rows if r[key] is not None), key=lambda r: _axis_order(r[knob]))
            fig.add_trace(go.Scatter(
                x=[str(r[knob]) for r in pts], y=[r[key] for r in pts], mode="markers",
                name=label, legendgroup=label, showlegend=c == 1, text=[r["name"] for r in pts],
                marker={"color": ["#1f77b4", "#ff7f0e", "#2ca02c"][m], "size": 8, "opacity": 0.75}),
                row=1, col=c)
    fig.add_hline(y=0.15, line_dash="dot", annotation_text="target F1 margin 0.15")
    fig.add_hline(y=0.0, line_color="grey")
    fig.update_layout(title="Trained SAE minus same-sparsity random SAE, image positions, findings "
                            "the probe sees (held-out)", height=450, width=300 * len(KNOBS))
    html = out.with_suffix(".html")
    fig.write_html(html, include_plotlyjs=True)  # embedded: opens offline, no network request
    written = [html]
    try:
        fig.write_image(out.with_suffix(".png"))
        written.append(out.with_suffix(".png"))
    except (ImportError, ValueError, RuntimeError):
        pass  # kaleido not installed: HTML and the markdown table only
    return written
