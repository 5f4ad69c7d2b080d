"""Tables and the plot of a steering run: target rate vs coefficient per method, with the
random controls and the unsteered baseline (plotly, script embedded: opens offline)."""

from __future__ import annotations

from pathlib import Path

from steering.evaluate import rise_over_control


def _f(x, nd: int = 2) -> str:
    return "-" if x is None or x != x else f"{x:.{nd}f}"


def _method(r: dict) -> str:
    m = r["method"]
    if r.get("selection"):
        m += f"[{r['selection']}]"
    f = r.get("feature")
    if isinstance(f, (list, tuple)):  # one feature per site
        m += " f" + "/".join(str(x) for x in f)
    elif f is not None:
        m += f" f{f}"
    return m


def markdown_table(result: dict, split: str = "test") -> str:
    """Rows of one split: rates beside their controls, collateral and fluency."""
    cols = ["target", "method", "coef", "n", "target", "baseline", "random", "reversed", "rise over random",
            "collateral flips", "top collateral rise", "perplexity", "parseable", "length limit"]
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in result["rows"]:
        if r["split"] != split:
            continue
        rise = rise_over_control(r)
        coll = sorted(r["collateral_rise"].items(), key=lambda kv: -abs(kv[1]))[:2]
        out.append("| " + " | ".join([
            str(r["target"]), _method(r), _f(r["coef"]), str(r["n"]), _f(r["target_rate"]),
            _f(r["baseline_rate"]), _f(r["random_control_rate"]), _f(r["reversed_rate"]), _f(rise),
            _f(r["collateral_flip_rate"], 3), ", ".join(f"{k} {v:+.2f}" for k, v in coll) or "-",
            _f(r["perplexity"]), _f(r["parseable_rate"]), _f(r["length_limit_rate"])]) + " |")
    return "\n".join(out)


def rate_figure(rows: list[dict], title: str | None = None):
    """One panel per target: target rate vs coefficient per method (selection split, lines),
    the random controls (dashed), the baseline (dotted) and the test split's chosen points."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    targets = sorted({r["target"] for r in rows if r["target"]}) or ["(none)"]
    fig = make_subplots(rows=1, cols=len(targets), subplot_titles=targets, shared_yaxes=True)
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    names: dict[str, str] = {}
    shown: set[str] = set()  # legend entries already drawn (each panel has its own features)
    for c, t in enumerate(targets, 1):
        sel = [r for r in rows if r["target"] == t]
        for split, dash, size in (("select", "solid", 6), ("test", None, 12)):
            groups: dict[str, list[dict]] = {}
            for r in sel:
                if r["split"] == split and r["coef"] is not None:
                    groups.setdefault(_method(r), []).append(r)
            for m, rs in groups.items():
                kind = m.split(" ")[0]  # method[selection], without the panel's feature id
                color = names.setdefault(kind, colors[len(names) % len(colors)])
                rs = sorted(rs, key=lambda r: r["coef"])
                label = f"{kind} ({split})"
                fig.add_trace(go.Scatter(
                    x=[r["coef"] for r in rs], y=[r["target_rate"] for r in rs],
                    mode="lines+markers" if dash else "markers", name=label, hovertext=m,
                    line={"color": color, "dash": dash or "solid"}, marker={"size": size, "color": color},
                    legendgroup=kind, showlegend=label not in shown), row=1, col=c)
                shown.add(label)
                if split == "select":
                    ctrl = [(r["coef"], r["random_control_rate"]) for r in rs if r["random_control_rate"] is not None]
                    if ctrl:
                        label = "random direction, same norm"
                        fig.add_trace(go.Scatter(
                            x=[x for x, _ in ctrl], y=[y for _, y in ctrl], mode="lines+markers",
                            name=label, line={"color": "grey", "dash": "dash"},
                            legendgroup="random", showlegend=label not in shown), row=1, col=c)
                        shown.add(label)
        base = next((r["baseline_rate"] for r in sel if r["baseline_rate"] is not None), None)
        if base is not None:
            fig.add_hline(y=base, line_dash="dot", line_color="black", row=1, col=c,
                          annotation_text="unsteered")
    fig.update_yaxes(title_text="share of reports stating the target", range=[-0.02, 1.02], row=1, col=1)
    fig.update_xaxes(title_text="coefficient (x typical residual norm)")
    fig.update_layout(title=title or "Steering: target mention rate vs coefficient (lines: selection "
                                     "split; large markers: test split at the chosen coefficient)",
                      height=480)  # width: the browser window's
    return fig


def write_html(result: dict, path: str | Path) -> Path:
    """``rate_figure`` of every row, written as one page with plotly's script embedded."""
    path = Path(path)
    rate_figure(result["rows"]).write_html(path, include_plotlyjs=True)  # opens offline
    return path
