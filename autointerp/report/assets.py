"""Static parts of the report: its style sheet, the table's sort / filter script, plotly.

The table script sorts on a click on a header of the first header row (a cell's ``data-sort``,
else its text) and filters rows by the ``#filter`` box (row text) and by the controls of the
filter row (elements with ``data-col`` and ``data-op``: ``text`` contains, ``min`` / ``max``
numeric bounds, ``has`` one of the cell's ``|``-separated values; the cell's ``data-filter``,
else ``data-sort``, else its text); ``#shown`` counts the rows left.

Everything the pages load is a file in the output folder: ``plotly.min.js`` is plotly's own
bundle (``plotly.offline.get_plotlyjs``), written once and referenced relatively, so the pages
open from disk with no network request at all.
"""

from __future__ import annotations

import os
from pathlib import Path

PLOTLY_JS = "plotly.min.js"

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; cursor: pointer; user-select: none; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.base { color: #888; font-size: 0.9em; }
.err { color: #b00; }
#filter { width: 30em; padding: 4px; margin: 0.5em 0 1em; }
tr.filters th { background: #fafafa; cursor: default; position: static; font-weight: normal; }
tr.filters input, tr.filters select { width: 100%; min-width: 4em; box-sizing: border-box; }
tr.filters input.half { width: 48%; min-width: 3em; }
#shown { color: #555; margin-left: 1em; }
.panel { border-left: 3px solid #ddd; padding-left: 1em; }
.none { color: #888; font-style: italic; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px; width: 230px; }
.card img { width: 100%; height: auto; display: block; }
.card .meta { font-size: 0.85em; color: #555; margin: 4px 0; }
mark { border-radius: 3px; padding: 0 2px; }
mark sub { font-size: 0.7em; color: #333; }
.sent { margin: 4px 0; font-size: 0.9em; }
nav a { margin-right: 1em; }
"""

TABLE_JS = """
(function () {
  const table = document.getElementById('features');
  const body = table.tBodies[0];
  const filter = document.getElementById('filter');
  const controls = table.tHead.querySelectorAll('[data-op]');
  const shown = document.getElementById('shown');
  const value = function (cell) {
    const d = cell.dataset;
    return d.filter !== undefined ? d.filter : d.sort !== undefined ? d.sort : cell.textContent;
  };
  const passes = function (row, c) {
    const want = c.value.trim();
    if (want === '') { return true; }
    const got = value(row.cells[+c.dataset.col]);
    if (c.dataset.op === 'has') { return got.split('|').includes(want); }
    if (c.dataset.op === 'text') { return got.toLowerCase().includes(want.toLowerCase()); }
    const x = parseFloat(got), t = parseFloat(want);
    if (isNaN(t)) { return true; }
    return !isNaN(x) && (c.dataset.op === 'min' ? x >= t : x <= t);
  };
  const apply = function () {
    const q = filter.value.toLowerCase();
    let n = 0;
    for (const row of body.rows) {
      const ok = row.textContent.toLowerCase().includes(q)
        && Array.from(controls).every(function (c) { return passes(row, c); });
      row.style.display = ok ? '' : 'none';
      n += ok ? 1 : 0;
    }
    if (shown) { shown.textContent = n + ' of ' + body.rows.length + ' shown'; }
  };
  filter.addEventListener('input', apply);
  controls.forEach(function (c) { c.addEventListener('input', apply); });
  Array.from(table.tHead.rows[0].cells).forEach(function (th, col) {
    th.addEventListener('click', function () {
      const asc = th.dataset.order !== 'asc';
      th.dataset.order = asc ? 'asc' : 'desc';
      const key = function (row) {
        const cell = row.cells[col];
        const v = cell.dataset.sort !== undefined ? cell.dataset.sort : cell.textContent;
        const n = parseFloat(v);
        return isNaN(n) ? v.toLowerCase() : n;
      };
      const rows = Array.from(body.rows).sort(function (a, b) {
        const x = key(a), y = key(b);
        if (typeof x !== typeof y) { return typeof x === 'number' ? -1 : 1; }
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
  apply();
})();
"""


def write_plotly_js(out: Path) -> Path:
    """``OUT/plotly.min.js`` (plotly's bundled script), written when missing or different."""
    import plotly.offline

    path = Path(out) / PLOTLY_JS
    script = plotly.offline.get_plotlyjs()
    if not path.exists() or path.stat().st_size != len(script.encode()):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(script)
        os.replace(tmp, path)
    return path


__all__ = ["CSS", "PLOTLY_JS", "TABLE_JS", "write_plotly_js"]
