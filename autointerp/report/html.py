"""``write_report(out)``: the static HTML report of an autointerp output folder.

Reads only the folder's files (``explanations.jsonl``, ``scores.jsonl``, ``summary.json``,
``examples.jsonl``, the heatmap PNGs) and writes:

- ``index.html``: the run's mean scores beside their random-SAE baselines, and a feature table
  (latent, explanation per explainer, modality mix, frequency, each score beside its baseline),
  sortable by clicking a header, filtered by the text box and by a filter row under the
  headers (modality, frequency range, minimum scores, explanation text; a few lines of inline
  script);
- ``features/<i>.html`` per latent: activation histogram (plotly), the top examples' heatmap
  overlays, their report sentences with the activating tokens marked and valued, the
  explanation(s) with the random latent's, and the scores with their baselines.

Other stages extend the site through :class:`ReportExtras` (a headline, extra table columns
with their filters, extra per-feature sections) and ``write_report(..., dest=...)``, which
writes the site into another folder (the feature browser, ``eval.browser``, does both).

Every string from the data goes through ``html.escape``. The pages load only files of the
folder (``plotly.min.js``, written once, and the PNGs): they open offline, from disk.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from autointerp.records import modality_class
from autointerp.report.assets import CSS, PLOTLY_JS, TABLE_JS, write_plotly_js
from autointerp.report.examples import EXAMPLES, HEATMAPS

log = logging.getLogger(__name__)

INDEX = "index.html"
FEATURES = "features"
MAX_SENTENCES = 4
"""Marked sentences shown per example (its strongest, in reading order)."""
_MARK = re.compile(r"<<(.*?)>>", re.S)


@dataclass
class Column:
    """An extra column of the feature table."""

    header: str
    """Header text."""
    cell: Callable[[int], str]
    """latent -> its ``<td>`` (``data-sort`` orders it, ``data-filter`` feeds the filter)."""
    filter: str = ""
    """Filter control: "" (none), "text", "min", "max", "range" (min and max) or "has:"
    followed by the choices joined by "|" (the cell's ``data-filter`` lists its own)."""


@dataclass
class ReportExtras:
    """What another stage adds to the report (the feature browser, ``eval.browser``)."""

    title: str = "Autointerp"
    """Title of the index page."""
    headline: str = ""
    """HTML under the index title (after the mean scores)."""
    columns: list[Column] = field(default_factory=list)
    """Extra feature-table columns, after the score columns."""
    sections: Callable[[int], list[str]] | None = None
    """latent -> HTML sections appended to its page (plotly figures may use the page's
    ``plotly.min.js``; image paths are relative to ``features/``)."""


def _rows(path: Path) -> list[dict[str, Any]]:
    from autointerp.pipeline import read_jsonl_rows

    return read_jsonl_rows(path)


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}g}"


def _score_cell(score: float | None, base: float | None) -> str:
    sort = "" if score is None or score != score else f' data-sort="{score}"'
    return (f'<td class="num"{sort}>{_num(score)} <span class="base">(random '
            f"{_num(base)})</span></td>")


def _page(title: str, body: str, *, head: str = "") -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{CSS}</style>{head}</head>"
            f"<body>{body}</body></html>\n")


def _modality(mix: dict[str, Any] | None) -> str:
    if not mix:
        return "–"
    return (f"image {mix.get('image_tokens', 0):.0%} / text {mix.get('text_tokens', 0):.0%} "
            f"(studies {mix.get('studies_image', 0)} / {mix.get('studies_text', 0)} / "
            f"{mix.get('studies_both', 0)})")


def filter_control(kind: str, col: int) -> str:
    """The filter-row ``<th>`` of column ``col`` (see :class:`Column` ``filter``)."""
    if not kind:
        return "<th></th>"
    if kind.startswith("has:"):
        opts = "".join(f'<option value="{escape(c)}">{escape(c)}</option>'
                       for c in kind[4:].split("|") if c)
        return (f'<th><select data-col="{col}" data-op="has"><option value="">any</option>'
                f"{opts}</select></th>")
    if kind == "text":
        return f'<th><input data-col="{col}" data-op="text" type="search" placeholder="contains"></th>'
    ops = ("min", "max") if kind == "range" else (kind,)
    cls = ' class="half"' if len(ops) == 2 else ""
    return "<th>" + "".join(
        f'<input{cls} data-col="{col}" data-op="{op}" type="number" step="any" '
        f'placeholder="{"≥" if op == "min" else "≤"}">' for op in ops) + "</th>"


def highlight(marked: str, tokens: list[str], values: list[float], vmax: float) -> str:
    """HTML of a ``<<...>>``-marked sentence: each mark a ``<mark>`` shaded by its strongest
    token's value over ``vmax``, the value beside it."""
    parts = _MARK.split(marked)  # even: plain text, odd: marked
    out, t = [], 0
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(escape(part))
            continue
        vals, rest = [], part
        while t < len(tokens) and tokens[t].strip() and tokens[t].strip() in rest:
            rest = rest[rest.index(tokens[t].strip()) + len(tokens[t].strip()):]
            vals.append(values[t])
            t += 1
        v = max(vals) if vals else None
        shade = 0.25 + 0.75 * min(1.0, (v or 0.0) / vmax) if vmax > 0 else 1.0
        label = "" if v is None else f"<sub>{v:.2f}</sub>"
        out.append(f'<mark style="background: rgba(255, 140, 0, {shade:.2f})" '
                   f'title="{escape(", ".join(f"{x:.3f}" for x in vals))}">{escape(part)}'
                   f"{label}</mark>")
    return "".join(out)


def _histogram(row: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    edges, counts = row["hist"]["edges"], row["hist"]["counts"]
    inner = counts[1:-1]
    nz = [i for i, c in enumerate(inner) if c]
    lo, hi = (nz[0], nz[-1] + 1) if nz else (0, len(inner))
    labels = [f"{edges[i]:.3g}–{edges[i + 1]:.3g}" for i in range(lo, hi)]
    fig = go.Figure(go.Bar(x=labels, y=inner[lo:hi], marker_color="#e8590c"))
    fig.update_layout(
        title=f"firing tokens by activation (below {edges[0]:.3g}: {counts[0]}, above "
              f"{edges[-1]:.3g}: {counts[-1]})", height=320, margin=dict(l=50, r=20, t=50, b=80),
        xaxis_title="activation (log-spaced bins)", yaxis_title="tokens")
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id="hist",
                       config={"displaylogo": False, "responsive": True})


def _example_card(ex: dict[str, Any], vmax: float) -> str:
    img = (f'<img src="../{escape(ex["heatmap"])}" alt="heatmap of {escape(ex["study_id"])}">'
           if ex.get("heatmap") else "")
    meta = (f'{escape(ex["study_id"])} · {escape(ex["split"])} · act {ex["activation"]:.3f}'
            f' · {escape(str(ex.get("modality")))}')
    if ex.get("region"):
        meta += f' · {escape(ex["region"])} ({escape(str(ex.get("slot")))})'
    every = ex.get("sentences") or []
    strongest = sorted(range(len(every)), key=lambda i: -max(every[i]["values"]))[:MAX_SENTENCES]
    sents = "".join(f'<div class="sent">{highlight(s["marked"], s["tokens"], s["values"], vmax)}'
                    "</div>" for i, s in enumerate(every) if i in strongest)
    if len(every) > MAX_SENTENCES:
        sents += f'<div class="meta">{len(every) - MAX_SENTENCES} weaker sentences not shown</div>'

    if ex.get("text_error"):
        sents += f'<div class="sent err">{escape(ex["text_error"])}</div>'
    labels = ", ".join(ex.get("labels") or []) or "no positive label"
    return (f'<div class="card">{img}<div class="meta">{meta}</div>{sents}'
            f'<div class="meta">labels: {escape(labels)}</div></div>')


def _details(d: dict[str, Any] | None) -> str:
    if not d:
        return ""
    return escape(", ".join(f"{k}={_num(v) if isinstance(v, float) else v}"
                            for k, v in d.items()))


def feature_page(latent: int, expl: list[dict], scores: list[dict], ex_row: dict | None,
                 prev_next: tuple[int | None, int | None], sections: list[str] | None = None) -> str:
    """One feature's page (see the module docstring); ``sections``: HTML appended at its end."""
    first = expl[0] if expl else {}
    nav = '<nav><a href="../index.html">all features</a>' + "".join(
        f'<a href="{n}.html">{label} ({n})</a>' for n, label in zip(prev_next, ("prev", "next"))
        if n is not None) + "</nav>"
    body = [nav, f"<h1>Latent {latent}</h1>",
            f"<p>frequency {_num(first.get('frequency'))} of tokens · modality "
            f"{escape(_modality(first.get('modality')))}</p>", "<h2>Explanations</h2><ul>"]
    for r in expl:
        text = (escape(r["explanation"]) if r["ok"]
                else f'<span class="err">failed: {escape(str(r["error"]))}</span>')
        base = r.get("baseline_explanation")
        body.append(f"<li><b>{escape(r['explainer'])}</b>: {text}"
                    + (f'<div class="base">random SAE latent {r.get("baseline_latent")}: '
                       f"{escape(base)}</div>" if base is not None else "") + "</li>")
    body.append("</ul><h2>Scores (beside the same score of a random SAE)</h2><table><thead><tr>"
                "<th>explainer</th><th>scorer</th><th>score</th><th>details</th>"
                "<th>random SAE details</th></tr></thead><tbody>")
    for s in scores:
        err = f'<span class="err">{escape(str(s["error"]))}</span>' if s.get("error") else ""
        body.append(f"<tr><td>{escape(s['explainer'])}</td><td>{escape(s['scorer'])}</td>"
                    f"{_score_cell(s['score'], s['baseline'])}<td>{_details(s.get('details'))}"
                    f"{err}</td><td>{_details(s.get('baseline_details'))}</td></tr>")
    body.append("</tbody></table><h2>Activation histogram</h2>")
    head = ""
    if ex_row is not None:
        head = f'<script src="../{PLOTLY_JS}"></script>'
        body.append(_histogram(ex_row))
        shown = ex_row["examples"]
        vmax = max((e["activation"] for e in shown), default=1.0)
        body.append(f"<h2>Top examples ({len(shown)}, explanation and test sets)</h2>"
                    '<div class="cards">' + "".join(_example_card(e, vmax) for e in shown)
                    + "</div>")
    else:
        body.append("<p>no examples were written for this latent (examples.jsonl)</p>")
    if sections:
        head = f'<script src="../{PLOTLY_JS}"></script>'
        body += sections
    return _page(f"latent {latent}", "\n".join(body), head=head)


def index_page(latents: list[int], expl: dict[int, list[dict]], scores: dict[int, list[dict]],
               summary: dict[str, Any], extras: ReportExtras | None = None) -> str:
    """The feature table (see the module docstring), with ``extras``' headline and columns."""
    extras = extras or ReportExtras()
    explainers = sorted({r["explainer"] for rows in expl.values() for r in rows})
    keys = sorted({(s["explainer"], s["scorer"]) for rows in scores.values() for s in rows})
    heads = ["latent", *explainers, "modality (image / text tokens; studies image / text / both)",
             "frequency", *(f"{s} ({e})" for e, s in keys), *(c.header for c in extras.columns)]
    kinds = ["", *("text" for _ in explainers), "has:image|text|both", "range",
             *("min" for _ in keys), *(c.filter for c in extras.columns)]
    rows = []
    for f in latents:
        by_e = {r["explainer"]: r for r in expl.get(f, [])}
        by_s = {(s["explainer"], s["scorer"]): s for s in scores.get(f, [])}
        first = next(iter(by_e.values()), {})
        cells = [f'<td class="num" data-sort="{f}"><a href="{FEATURES}/{f}.html">{f}</a></td>']
        for e in explainers:
            r = by_e.get(e)
            cells.append("<td></td>" if r is None else f"<td>{escape(r['explanation'])}</td>"
                         if r["ok"] else f'<td class="err">failed: {escape(str(r["error"]))}</td>')
        mix = first.get("modality") or {}
        kind = modality_class(mix["image_tokens"]) if "image_tokens" in mix else ""
        cells.append(f'<td data-sort="{mix.get("image_tokens", "")}" data-filter="{kind}">'
                     f"{escape(_modality(mix))}</td>")
        cells.append(f'<td class="num" data-sort="{first.get("frequency", "")}">'
                     f"{_num(first.get('frequency'))}</td>")
        cells += [_score_cell(by_s[k]["score"], by_s[k]["baseline"]) if k in by_s
                  else "<td></td>" for k in keys]
        cells += [c.cell(f) for c in extras.columns]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    means = "".join(f"<li>{escape(k)}: mean {_num(v['mean'])} over {v['n']} "
                    f'<span class="base">(random SAE {_num(v["baseline"])})</span></li>'
                    for k, v in (summary.get("scorers") or {}).items())
    planted = summary.get("planted")
    if planted:
        base = planted.get("baseline") or {}
        means += (f"<li>planted findings ({escape(planted['explainer'])}): {planted['n_named']}"
                  f" of {planted['n_matched']} matched latents named "
                  f'<span class="base">(random SAE {base.get("n_named")} of '
                  f'{base.get("n_matched")})</span></li>')
    head_row = "".join(f"<th>{escape(h)}</th>" for h in heads)
    filter_row = "".join(filter_control(k, i) for i, k in enumerate(kinds))
    body = (f"<h1>{escape(extras.title)}: {len(latents)} features</h1><ul>{means}</ul>"
            f"{extras.headline}"
            '<input id="filter" type="search" placeholder="filter rows by text">'
            '<span id="shown"></span>'
            f'<table id="features"><thead><tr>{head_row}</tr><tr class="filters">{filter_row}'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table><script>{TABLE_JS}</script>")
    return _page(f"{extras.title} features", body)


def write_report(out_dir: str | Path, *, dest: str | Path | None = None,
                 extras: ReportExtras | None = None) -> Path:
    """Write ``index.html``, ``features/<i>.html`` and ``plotly.min.js`` from ``out_dir``'s own
    files into ``dest`` (default ``out_dir``; another folder also gets a copy of the heatmap
    PNGs), with ``extras``' headline, columns and sections; returns the index path."""
    out = Path(out_dir)
    if not (out / "explanations.jsonl").exists():
        raise FileNotFoundError(f"{out} holds no explanations.jsonl; pass the --out folder of "
                                "a radinterp autointerp run")
    dest = out if dest is None else Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    expl: dict[int, list[dict]] = {}
    for r in _rows(out / "explanations.jsonl"):
        expl.setdefault(r["latent"], []).append(r)
    scores: dict[int, list[dict]] = {}
    for s in _rows(out / "scores.jsonl"):
        scores.setdefault(s["latent"], []).append(s)
    examples = {r["latent"]: r for r in _rows(out / EXAMPLES)}
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    latents = list(expl)
    if dest.resolve() != out.resolve() and (out / HEATMAPS).is_dir():
        shutil.copytree(out / HEATMAPS, dest / HEATMAPS, dirs_exist_ok=True)
    write_plotly_js(dest)
    (dest / FEATURES).mkdir(exist_ok=True)
    sections = extras.sections if extras is not None else None
    for i, f in enumerate(latents):
        nb = (latents[i - 1] if i else None, latents[i + 1] if i + 1 < len(latents) else None)
        page = feature_page(f, expl[f], scores.get(f, []), examples.get(f), nb,
                            sections(f) if sections else None)
        (dest / FEATURES / f"{f}.html").write_text(page)
    index = dest / INDEX
    index.write_text(index_page(latents, expl, scores, summary, extras))
    log.info("report: %s (%d feature pages)", index, len(latents))
    return index


__all__ = ["Column", "ReportExtras", "feature_page", "filter_control", "highlight", "index_page",
           "write_report"]
