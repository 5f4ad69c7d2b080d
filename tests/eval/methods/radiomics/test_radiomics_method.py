"""``radinterp method radiomics`` end to end on tiny real runs: phantoms (oracle + learned
persona), a real-cxr subset (learned persona, masks and estimates), resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from eval.methods import MethodRunConfig, run_method
from eval.methods.io import MethodOutput
from tests.shared_data import REAL_CXR

TINY = {"size": 64, "grids": "1,2", "min_cell_px": 3, "inpaint_steps": 4, "epochs": 3,
        "workers": 1, "min_positives": 1, "min_test_positives": 10, "baselines": False}


@pytest.fixture(scope="module")
def phantom_run(phantom_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("radiomics_run")
    cfg = MethodRunConfig(method="radiomics", data=str(phantom_dir), out=str(out),
                          progress=False, options={**TINY, "baselines": True})
    return cfg, run_method(cfg)


def test_phantom_run_writes_model_maps_and_the_ablation(phantom_run):
    cfg, m = phantom_run
    assert m["main_persona"] == "oracle"
    assert set(m["ablation"]) == {f"{p}/{u}" for p in ("oracle", "learned", "none")
                                  for u in ("usage", "no_usage")}
    assert set(m["persona_gain"]) == {"oracle/usage", "oracle/no_usage", "learned/usage",
                                      "learned/no_usage"}
    row = m["ablation"]["oracle/usage"]
    assert set(row["auroc"]) == set(m["findings"])
    assert "baseline_shuffled_labels" in row and "baseline_random_features" in row
    assert 0 < row["sparsity"]["mean_usage"] <= 1
    # residuals double the features of the persona variants
    assert m["ablation"]["oracle/no_usage"]["n_features"] > m["ablation"]["none/no_usage"]["n_features"]
    assert m["learned_persona"]["available"] and m["regions"]["region_sources"] == {"phantom": 30}
    assert set(m["too_few_positives"]) == set(m["findings"])  # 30 studies: say so
    out = MethodOutput(cfg.out)
    tensors, meta = out.load_model()
    assert meta["persona"] == "oracle" and len(meta["features"]) == tensors["standardiser.mean"].numel()
    assert any(k.startswith("inpainter.") for k in tensors)
    test_ids = m["split_sizes"]["test"]
    maps = sorted((out.root / "maps").iterdir())
    assert len(maps) == test_ids
    t, map_meta = out.load_map(maps[0].stem)  # phantom ids are file-safe: the stem is the id
    assert map_meta["study_id"] == maps[0].stem and map_meta["findings"] == m["findings"]
    assert t["contribution"].shape == (len(m["findings"]), 16, 16)
    assert torch.isfinite(t["contribution"]).all() and t["usage"].numel() == len(meta["features"])


def test_rerun_is_a_no_op(phantom_run):
    cfg, m = phantom_run
    assert run_method(cfg) == m


def test_real_cxr_subset_runs_with_the_learned_persona(tmp_path):
    rows = [json.loads(x) for x in (REAL_CXR / "metadata.jsonl").read_text().splitlines()]
    pick = [r for r in rows if r["mask_file"]][:10] + [r for r in rows if not r["mask_file"]][:10]
    for r in pick:  # a subset folder pointing at the shared files
        r["image_file"] = str(REAL_CXR / r["image_file"])
        r["mask_file"] = str(REAL_CXR / r["mask_file"]) if r["mask_file"] else ""
    data = tmp_path / "subset"
    data.mkdir()
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pick))
    cfg = MethodRunConfig(method="radiomics", data=str(data), out=str(tmp_path / "o"),
                          progress=False, options=TINY)
    m = run_method(cfg)
    assert m["main_persona"] == "learned" and "oracle/usage" not in m["ablation"]
    assert m["regions"]["region_sources"] == {"mask": 10, "estimate": 10}
    assert m["learned_persona"] == {"normal_training_images": m["learned_persona"]["normal_training_images"],
                                    "available": False}


def _cli(args, tmp_path, data):
    import typer

    from eval.methods.cli import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    return CliRunner().invoke(app, ["method", "radiomics", "--data", str(data), "--out",
                                    str(tmp_path / "o"), "--no-progress", *args])


@pytest.mark.parametrize("opts, message", [
    (["--opt", "grids=1,2,40"], "cannot hold a 40 x 40 grid"),
    (["--opt", "persona=psychic"], "unknown persona 'psychic'"),
    (["--opt", "workers=0"], "workers must be >= 1"),
])
def test_bad_options_are_one_line_errors(phantom_dir, tmp_path, opts, message):
    res = _cli([*opts, "--opt", "size=64", "--opt", "min_positives=1"], tmp_path, phantom_dir)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
