"""The notebooks run top to bottom (code cells executed in order, parameters overridden)."""

from __future__ import annotations

import json
import os
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def run_notebook(path: Path, overrides: dict) -> dict:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    ns: dict = {}
    for i, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"{path.name}[{i}]", "exec"), ns)
        if i == 0:  # the first code cell holds the parameters
            ns.update(overrides)
    return ns


def test_pipeline_tour_notebook(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        ns = run_notebook(NOTEBOOKS / "01_pipeline_tour.ipynb",
                          {"MODEL": "tiny", "IMAGE_SIZE": 112, "N_STUDIES": 6, "SITE": "lm.blocks.1.resid_post"})
    finally:
        os.chdir(cwd)
    assert ns["store"].num_tokens("lm.blocks.1.resid_post") > 6 * 64
    assert ns["fig"].data[0].type == "bar"
    assert all(0 <= f.auroc <= 1 for f in ns["found"])
