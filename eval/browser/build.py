"""``build_browser(cfg)``: the feature browser, a static site that opens offline from disk.

It is the autointerp report (``autointerp.report.html.write_report``) written into its own
folder and extended through ``ReportExtras``:

- the index gains a headline (the SAE eval's numbers beside the random SAE's, the steering
  run's and the bridge's in one line each, the folders read) and three columns: *labels* (the
  labels the explanation's evidence names, the planted finding the feature separates at
  held-out AUROC >= ``MATCH_AUROC``, the findings and labels the bridge matched it to; a
  filter picks one), *steering* (best test-split target rate beside the random direction's)
  and *bridge* (matched targets, held-out agreement beside the random SAE's);
- every feature page gains a steering section (``eval.browser.steering_panel``) and a bridge
  section (``eval.browser.bridge_panel``); without data each says so.

Images are files of the folder (``heatmaps/`` copied from the autointerp run, ``bridge_png/``
from the bridge's ``png/``) and plotly's script is ``plotly.min.js``: no page makes a network
request. The browser only reads the stage folders; rebuilding it rewrites its own files.
"""

from __future__ import annotations

import logging
from html import escape
from pathlib import Path

from autointerp.pipeline import MATCH_AUROC, read_jsonl_rows
from autointerp.report.html import Column, ReportExtras, write_report
from eval.browser.bridge_panel import (bridge_cell, bridge_headline, bridge_labels, bridge_section, copy_maps,
                                       matched_features)
from eval.browser.config import BrowserConfig
from eval.browser.runs import Runs, load_runs
from eval.browser.steering_panel import steered_features, steering_cell, steering_headline, steering_section
from radinterp.errors import InputError

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
HEADLINE = ("explained_variance", "l0", "CE-loss", "probing")
"""First words of the SAE eval summary lines (``eval.sae_eval.summary``) shown on the index;
the rest are one click away."""


def _norm(name: str) -> str:
    return " ".join(name.replace("_", " ").lower().split())


def feature_labels(runs: Runs) -> dict[int, list[str]]:
    """latent -> its labels (see the module docstring), lower case, in order of first mention."""
    out: dict[int, list[str]] = {}

    def add(f: int, name: str) -> None:
        labels = out.setdefault(f, [])
        if _norm(name) not in labels:
            labels.append(_norm(name))

    for r in read_jsonl_rows(runs.autointerp / "explanations.jsonl"):
        out.setdefault(r["latent"], [])
        for item in (r.get("evidence") or {}).get("labels", []):
            add(r["latent"], item["item"])
    for s in read_jsonl_rows(runs.autointerp / "scores.jsonl"):
        d = s.get("details") or {}
        if s["scorer"] == "planted" and d.get("finding") and (d.get("auroc_test") or 0) >= MATCH_AUROC:
            add(s["latent"], d["finding"])
    for f in list(out):
        for name in bridge_labels(runs, f):
            add(f, name)
    return out


def _labels_column(labels: dict[int, list[str]]) -> Column:
    choices = sorted({x for v in labels.values() for x in v})

    def cell(f: int) -> str:
        ls = labels.get(f, [])
        return f'<td data-filter="{escape("|".join(ls))}">{escape(", ".join(ls))}</td>'

    return Column("labels", cell, "has:" + "|".join(choices))


def headline(runs: Runs, latents: set[int]) -> str:
    """The index's headline: SAE eval, steering, bridge, and the folders read."""
    from eval.sae_eval.summary import summary_lines

    parts = ["<h2>SAE eval</h2>"]
    if runs.metrics is not None:
        lines = summary_lines(runs.metrics)
        key = [ln for ln in lines[1:] if ln.split()[:1] and ln.split()[0] in HEADLINE]
        parts.append(f"<pre>{escape(lines[0])}\n{escape(chr(10).join(key))}</pre><details><summary>"
                     f"all SAE eval numbers</summary><pre>{escape(chr(10).join(lines))}</pre></details>")
    else:
        parts.append('<p class="none">no SAE eval given (radinterp browse --eval DIR)</p>')
    items = [steering_headline(runs), bridge_headline(runs)]
    missing = [f for f in steered_features(runs) if f not in latents]
    if runs.bridge is not None:
        missing += sorted(f for f in matched_features(runs.bridge) if f not in latents and f not in missing)
    if missing:
        items.append(f"<li>{len(missing)} steered or bridge-matched features were not explained by "
                     f"the autointerp run, so they have no page: {escape(', '.join(map(str, missing)))}"
                     " (pass them to radinterp autointerp --features)</li>")
    src = [("autointerp", runs.autointerp), ("steering", runs.steering_dir), ("bridge", runs.bridge_dir),
           ("SAE eval", runs.eval_dir)]
    items.append("<li>read from: " + ", ".join(f"{k} {escape(str(v))}" for k, v in src if v) + "</li>")
    return "".join(parts) + "<h2>Runs</h2><ul>" + "".join(i for i in items if i) + "</ul>"


def _check_out(cfg: BrowserConfig) -> Path:
    out, ai = Path(cfg.out), Path(cfg.autointerp)
    if out.exists() and ai.exists() and out.resolve() == ai.resolve():
        raise InputError(f"--out {out} is the autointerp folder (its own report lives there)",
                         "pass another --out folder for the browser")
    if out.is_dir() and any(out.iterdir()) and not (out / "cfg.json").is_file():
        raise InputError(f"--out {out} holds other files (no browser cfg.json)",
                         "pass an empty or new --out folder")
    return out


def build_browser(cfg: BrowserConfig) -> Path:
    """Build the browser into ``cfg.out`` (see the module docstring); returns index.html."""
    out = _check_out(cfg)
    runs = load_runs(cfg.autointerp, cfg.steering, cfg.bridge, cfg.sae_eval)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    cfg.save(out / "cfg.json")
    copy_maps(runs, out)
    labels = feature_labels(runs)

    def sections(f: int) -> list[str]:
        return [steering_section(runs, f, cfg.n_generations), bridge_section(runs, f)]

    columns = [_labels_column(labels),
               Column("steering: target rate (random)", lambda f: steering_cell(runs, f), "text"),
               Column("bridge: matched (random)", lambda f: bridge_cell(runs, f), "text")]
    extras = ReportExtras(title="Feature browser", headline=headline(runs, set(labels)),
                          columns=columns, sections=sections)
    index = write_report(runs.autointerp, dest=out, extras=extras)
    (out / MARKER).write_text("done\n")
    n_steer = len(set(labels) & set(steered_features(runs)))
    n_bridge = len(set(labels) & matched_features(runs.bridge)) if runs.bridge is not None else 0
    log.info("browser: %s (%d features; %d with steering, %d with bridge matches)",
             index, len(labels), n_steer, n_bridge)
    return index


__all__ = ["MARKER", "build_browser", "feature_labels", "headline"]
