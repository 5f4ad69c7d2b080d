"""A feature's steering effect, from a ``radinterp steer`` run (steering.json rows whose
``feature`` is the feature, generations.jsonl for the reports themselves).

The section draws ``steering.report.rate_figure`` of the feature's rows (target rate vs
coefficient on the selection split, the random directions of equal norm dashed, the unsteered
rate dotted, the test split's chosen coefficient as large markers), a test-split table beside
the other methods on the same target, and a few test-split reports written unsteered and
steered. A feature the run did not steer says so.
"""

from __future__ import annotations

from html import escape

from eval.browser.runs import Runs
from radinterp.labels import is_positive
from steering.arms import arm_key
from steering.evaluate import rise_over_control
from steering.report import rate_figure


def _f(x: float | None, nd: int = 2) -> str:
    return "–" if x is None or x != x else f"{x:.{nd}f}"


def feature_rows(runs: Runs, latent: int) -> list[dict]:
    """steering.json rows that steer with ``latent``."""
    return [r for r in (runs.steering or {}).get("rows", []) if r.get("feature") == latent]


def steered_features(runs: Runs) -> list[int]:
    return sorted({r["feature"] for r in (runs.steering or {}).get("rows", [])
                   if r.get("feature") is not None})


def _label(r: dict) -> str:
    m = r["method"] + (f" [{r['selection']}]" if r.get("selection") else "")
    return m + (f" f{r['feature']}" if r.get("feature") is not None else "")


def _table(rows: list[dict]) -> str:
    head = ("<tr><th>target</th><th>method</th><th>coef</th><th>n</th><th>target rate</th>"
            "<th>random direction</th><th>reversed</th><th>unsteered</th><th>rise over random</th>"
            "<th>collateral flips</th><th>perplexity</th></tr>")
    body = "".join(
        f"<tr><td>{escape(str(r['target']))}</td><td>{escape(_label(r))}</td>"
        f'<td class="num">{_f(r["coef"])}</td><td class="num">{r["n"]}</td>'
        f'<td class="num">{_f(r["target_rate"])}</td><td class="num">{_f(r["random_control_rate"])}</td>'
        f'<td class="num">{_f(r["reversed_rate"])}</td><td class="num">{_f(r["baseline_rate"])}</td>'
        f'<td class="num">{_f(rise_over_control(r))}</td>'
        f'<td class="num">{_f(r["collateral_flip_rate"], 3)}</td><td class="num">{_f(r["perplexity"])}</td></tr>'
        for r in rows)
    return f"<table>{head}{body}</table>"


def _generations(runs: Runs, row: dict, n: int) -> str:
    """Up to ``n`` test-split studies: the unsteered report beside the steered one."""
    steered = runs.generations.get(("test", arm_key(row["method"], row["target"], row["feature"],
                                                    row["coef"], row["where"])), [])
    base = {g["study_id"]: g for g in runs.generations.get(("test", "baseline"), [])}
    pairs = [(base[g["study_id"]], g) for g in steered if g["study_id"] in base][:n]
    if not pairs:
        return '<p class="none">no generations recorded for this arm</p>'
    t = row["target"]

    def cell(g: dict) -> str:
        says = is_positive(g["labels"], t) if t else False
        return (f"<td>{escape(g['text'])}<div class=\"base\">states {escape(str(t))}: "
                f"{'yes' if says else 'no'}</div></td>")

    return ("<table><tr><th>study</th><th>unsteered</th><th>steered "
            f"({escape(_label(row))}, coef {_f(row['coef'])})</th></tr>"
            + "".join(f"<tr><td>{escape(s['study_id'])}</td>{cell(b)}{cell(s)}</tr>" for b, s in pairs)
            + "</table>")


def _picked(runs: Runs, latent: int) -> str:
    """How the run chose the feature (``--finding`` selection), with its AUROCs."""
    notes = []
    for finding, info in ((runs.steering or {}).get("selection") or {}).items():
        for how, f in (info.get("picked") or {}).items():
            if f != latent:
                continue
            cand = next((c for c in info.get("candidates", []) if c.get("feature") == latent), {})
            notes.append(f"picked for {escape(finding)} by {escape(how)} (AUROC on the store: "
                         f"selection {_f(cand.get('auroc_select'))}, held out "
                         f"{_f(cand.get('auroc_held'))})")
    return "<p>" + "; ".join(notes) + "</p>" if notes else ""


def steering_section(runs: Runs, latent: int, n_generations: int) -> str:
    """The feature page's steering section (see the module docstring)."""
    if runs.steering is None:
        return ('<h2>Steering</h2><p class="none">no steering run given to the browser '
                "(radinterp browse --steering DIR)</p>")
    rows = feature_rows(runs, latent)
    if not rows:
        others = ", ".join(map(str, steered_features(runs))) or "none"
        return ('<h2>Steering</h2><p class="none">not steered in this steering run (its SAE '
                f"features: {escape(others)})</p>")
    targets = {r["target"] for r in rows}
    fig = rate_figure(rows, title=f"feature {latent}: target mention rate vs coefficient")
    plot = fig.to_html(full_html=False, include_plotlyjs=False, div_id="steer",
                       config={"displaylogo": False, "responsive": True})
    test = [r for r in rows if r["split"] == "test"]
    others = [r for r in runs.steering["rows"] if r["split"] == "test" and r["target"] in targets
              and r.get("feature") != latent]
    gens = "".join(f"<h3>{escape(str(r['target']))}: {escape(_label(r))}</h3>"
                   + _generations(runs, r, n_generations) for r in test) if n_generations else ""
    n_sel, n_test = runs.steering.get("n_select"), runs.steering.get("n_test")
    methods = ", ".join(sorted({r["method"] for r in rows}))  # add: decoder direction; clamp, ablate
    pops = " / ".join(sorted({str(r.get("population") or "without") for r in rows}))
    return (f'<h2>Steering</h2><div class="panel">{_picked(runs, latent)}'
            f"<p>Reports generated with the feature steered ({escape(methods)}) at "
            f"{escape(str(rows[0].get('where')))} positions, on held-out studies {escape(pops)} the "
            f"target ({n_sel} select the coefficient, {n_test} test it), beside random directions "
            f"of equal norm, the reversed direction and the unsteered model.</p>{plot}"
            f"<h3>Test split, at the coefficient chosen on the selection split</h3>{_table(test)}"
            + (f"<h3>Other methods on the same target (test split)</h3>{_table(others)}" if others else "")
            + (f"<h3>Example reports (test split)</h3>{gens}" if gens else "") + "</div>")


def steering_cell(runs: Runs, latent: int) -> str:
    """Index cell: the feature's best test-split rise over the random control."""
    test = [r for r in feature_rows(runs, latent) if r["split"] == "test"
            and rise_over_control(r) is not None]
    if not test:
        return "<td></td>"
    best = max(test, key=rise_over_control)
    ctrl = best["random_control_rate"] if best["random_control_rate"] is not None else best["baseline_rate"]
    return (f'<td class="num" data-sort="{rise_over_control(best)}">{escape(str(best["target"]))} '
            f'{_f(best["target_rate"])} <span class="base">(random {_f(ctrl)})</span></td>')


def steering_headline(runs: Runs) -> str:
    if runs.steering is None:
        return ""
    feats = steered_features(runs)
    return (f"<li>steering: {len(feats)} SAE features steered ({escape(', '.join(map(str, feats)))})"
            f", {runs.steering.get('n_test')} test studies; column <i>steering</i>: best "
            "test-split target rate beside the random direction's</li>")


__all__ = ["feature_rows", "steered_features", "steering_cell", "steering_headline",
           "steering_section"]
