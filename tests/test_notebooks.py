"""The notebooks run top to bottom (code cells executed in order, parameters overridden)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.shared_data import REAL_CXR

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


def run_in(tmp_path, name: str, overrides: dict) -> dict:
    """``run_notebook`` with ``tmp_path`` as the working folder (the notebooks write under it)."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return run_notebook(NOTEBOOKS / name, overrides)
    finally:
        os.chdir(cwd)


TINY = {"MODEL": "tiny", "IMAGE_SIZE": 112, "SITE": "lm.blocks.1.resid_post"}


def test_autointerp_notebook(tmp_path):
    ns = run_in(tmp_path, "02_autointerp.ipynb", {**TINY, "N_STUDIES": 16, "D_SAE": 128, "K": 8,
                                                  "N_LATENTS": 6, "SCORERS": ["planted"]})
    s = ns["summary"]
    assert s["n_latents"] == 6 and s["n_explanations"] == 6
    planted = s["scorers"]["enrichment/planted"]
    assert planted["n"] == 6 and 0 <= planted["mean"] <= 1 and 0 <= planted["baseline"] <= 1
    assert [r[0] for r in ns["rows"]][:1] == ["enrichment/planted"]
    assert {t.name for t in ns["fig"].data} == {"trained SAE", "random SAE (same shape, L0)"}
    assert all(len(t.x) == len(ns["rows"]) for t in ns["fig"].data)
    assert all(r["explanation"] and r["baseline_latent"] is not None for r in ns["explained"])
    report = tmp_path / ns["report"]
    assert report.is_file() and (report.parent / "plotly.min.js").is_file()
    assert ns["llm_cfg"].needs_llm and not (tmp_path / ns["llm_cfg"].out).exists()  # shown, not run


def test_steering_notebook(tmp_path):
    coefs = [0.0, 1.0]
    ns = run_in(tmp_path, "03_steering.ipynb", {**TINY, "N_STORE": 12, "N_EVAL": 2, "COEFS": coefs,
                                                "D_SAE": 64, "K": 4, "MAX_NEW_TOKENS": 4})
    assert len(ns["eval_studies"]) == 2 and 0.5 <= ns["candidates"][0].auroc_select <= 1  # best of 64
    assert all(0 <= c.auroc_held <= 1 for c in ns["candidates"])
    assert set(ns["rates"]) == set(ns["arms"]) and len(ns["rates"]) == 3
    for name, ys in ns["rates"].items():
        assert len(ys) == len(coefs) and all(0 <= y <= 1 for y in ys)
        assert ys[0] == ns["base_rate"]  # coefficient 0 is the unsteered model
    assert ns["steered"] != ns["plain"]  # one typical residual norm on every image position moves it
    assert [t.name for t in ns["fig"].data] == list(ns["arms"])
    assert all(list(t.x) == coefs for t in ns["fig"].data)


def test_bridges_notebook(tmp_path):
    ns = run_in(tmp_path, "04_bridges.ipynb", {
        **TINY, "MODEL_OPTIONS": {"image_size": 112}, "N_STUDIES": 24, "SPLIT": (0.4, 0.2, 0.4),
        "METHOD_OPTIONS": {"epochs": 10, "eval_every": 5, "min_positives": 2, "hidden": 8},
        "D_SAE": 128, "K": 8, "N_PERMUTATIONS": 20})
    r = ns["result"]
    assert r["split"]["n_select"] + r["split"]["n_report"] == 24
    assert "insight" in r["methods"] and 0 <= ns["method_metrics"]["summary"]["mean_dice"] <= 1
    heat = ns["fig"].data[0]
    assert heat.type == "heatmap" and len(heat.y) == len(r["associations"]["matrix"]["image"]["targets"]) > 0
    assert all(-1 <= v <= 1 for row in heat.z for v in row if v is not None)
    assert any(t.startswith("insight:") for t in heat.y) and any(t.startswith("finding:") for t in heat.y)
    names, comp = ns["names"], ns["compare"]
    assert names and len(comp["trained"]) == len(comp["random"]) == len(names)
    assert all(-1 <= v <= 1 for v in comp["trained"] + comp["random"] if v is not None)
    assert [t.name for t in ns["fig2"].data][:2] == ["trained SAE", "random SAE (same shape, L0)"]
    assert ns["sheet"] is not None and ns["sheet"].size[0] >= 3 * 224  # mask, SAE, random SAE maps


def test_own_model_notebook(tmp_path):
    ns = run_in(tmp_path, "05_own_model.ipynb", {
        "IMAGES": str(REAL_CXR), "N_IMAGES": 8, "N_HELD_OUT": 4, "IMAGE_SIZE": 56, "PATCH_SIZE": 14,
        "WIDTH": 32, "LAYERS": 2, "SITE": "lm.blocks.1.resid_post", "D_SAE": 64, "K": 4,
        "N_FEATURES": 2, "N_TOP": 2, "MAX_FREQUENCY": 0.5})
    assert ns["adapter"].name == "llava" and ns["n_side"] == 4
    assert ns["store"].num_tokens("lm.blocks.1.resid_post") == 8 * 16  # image tokens only
    assert ns["held"].num_tokens("lm.blocks.1.resid_post") == 4 * 16
    assert set(ns["studies"]) == {r["study_id"] for r in ns["rows"]}
    ev = {k: v["explained_variance"] for k, v in ns["recon"].items()}
    assert -1 < ev["random"] < ev["trained"] <= 1  # trained beats random on held-out images
    assert list(ns["fig"].data[0].y) == [ev["trained"], ev["random"]]
    assert len(ns["grid"]) == 4 and all(len(row) == 2 for row in ns["grid"])  # 2 trained + 2 random
    assert ns["sheet"].size == (2 * ns["TILE"], 4 * ns["TILE"])
    assert len(set(ns["sheet"].getdata())) > 100  # radiographs with heatmaps, not a blank sheet
