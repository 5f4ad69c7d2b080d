"""The reference-method frame on real tiny runs: split, patch features, masks, outputs, CLI."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from eval.methods import METHODS, MethodOptions, MethodRunConfig, ReferenceMethod, run_method
from eval.methods.localisation import best_dice_threshold, dice, iou, localisation_scores, pointing_hit
from eval.methods.masks import load_patch_masks, roi_grid_cells, study_findings
from eval.methods.patch_features import extract_patch_features
from eval.methods.splits import id_hash, make_split
from radinterp.data.sources import open_studies
from radinterp.errors import InputError
from radinterp.models.geometry import mask_patch_fraction

from tests.shared_data import REAL_CXR


@dataclasses.dataclass
class ProbeOptions(MethodOptions):
    """Options of the frame's test method."""

    scale: float = 1.0
    """Multiplies the maps."""
    finding: str | None = None
    """Finding whose map is written (None: every finding)."""


class FeatureNormProbe(ReferenceMethod):
    """Map = patch feature norm; enough to drive every part of the frame."""

    name = "frame_probe"
    Options = ProbeOptions

    def run(self, ctx):
        feats = ctx.features
        findings = ctx.findings()
        test = [s for s in ctx.split.test if s in feats.study_ids]
        norm = feats.select(test).norm(dim=-1) * self.options.scale  # (K, n, n)
        maps = norm[:, None].expand(-1, len(findings), -1, -1).numpy()
        pos = ctx.labels(test, findings)
        masks = ctx.patch_masks(test, findings, pos)
        loc = localisation_scores(maps, masks, pos)
        ctx.output.save_model({"scale": torch.tensor([self.options.scale])}, {"findings": findings})
        for k, sid in enumerate(test):
            ctx.output.save_map(sid, {"heat": torch.from_numpy(maps[k]).float()})
        return {"findings": findings, "localisation": {f: t.summary() for f, t in loc.items()},
                "skipped_features": len(feats.skipped)}


if "frame_probe" not in METHODS:
    METHODS.add("frame_probe", FeatureNormProbe)


def test_split_is_deterministic_disjoint_and_order_free():
    ids = [f"s{i}" for i in range(50)]
    a, b = make_split(ids, seed=1), make_split(list(reversed(ids)), seed=1)
    assert a == b
    assert sorted(a.train + a.val + a.test) == sorted(ids)
    assert a.sizes() == {"train": 30, "val": 10, "test": 10}
    assert make_split(ids, seed=2) != a
    assert id_hash("s1", 0) == int.from_bytes(__import__("hashlib").sha256(b"0:s1").digest()[:8], "big")
    with pytest.raises(ValueError, match="at least 3"):
        make_split(["a", "b"])


def test_patch_features_are_the_vision_tower_patch_tokens(tiny_adapter, phantom_dir, tmp_path):
    studies = list(open_studies(phantom_dir))[:5]
    pf = extract_patch_features(tiny_adapter, studies, "vision.blocks.1", tmp_path, batch_size=2,
                                part_size=3, progress=False)
    n = tiny_adapter.n_patches_side
    assert pf.feats.shape == (5, n, n, tiny_adapter.site_dim("vision.blocks.1"))
    pix = torch.stack([tiny_adapter.build_inputs(dataclasses.replace(s, prior_frontal=None))
                       .pixel_values[0] for s in studies])
    with torch.no_grad():
        out = tiny_adapter.model.model.vision_tower(pix, output_hidden_states=True).hidden_states[2]
    assert len(tiny_adapter.vision_blocks()) == 2  # hidden_states[2]: block 1's output
    torch.testing.assert_close(pf.feats, out[:, 1:].reshape(5, n, n, -1), rtol=1e-4, atol=1e-4)
    # resumed from the two parts: nothing recomputed, same tensors
    parts = sorted(tmp_path.glob("part-*.safetensors"))
    assert len(parts) == 2
    again = extract_patch_features(tiny_adapter, studies, "vision.blocks.1", tmp_path, progress=False)
    assert sorted(tmp_path.glob("part-*.safetensors")) == parts
    torch.testing.assert_close(again.feats, pf.feats)


def test_masks_on_the_grid_and_missing_masks_counted(tiny_adapter, phantom_dir):
    studies = list(open_studies(phantom_dir))
    with_mask = next(s for s in studies if s.masks)
    finding = sorted(with_mask.masks)[0]
    pm = load_patch_masks([with_mask], [finding], tiny_adapter.patch_geometry)
    from PIL import Image

    pixels = np.asarray(Image.open(with_mask.masks[finding]).convert("L")) > 127
    np.testing.assert_allclose(pm.fraction[0, 0], mask_patch_fraction(pixels, 112, 14))
    assert pm.known.tolist() == [[True]]
    lost = dataclasses.replace(with_mask, masks={})
    pm = load_patch_masks([lost], [finding], tiny_adapter.patch_geometry)
    assert not pm.known.any() and pm.missing == {finding: {"no mask": 1}}
    heat = pm.fraction[0, 0] + 0.0
    scores = localisation_scores(heat[None, None], pm, np.array([[True]]), thresholds=[0.5])
    assert scores[finding].summary()["n_skipped_no_mask"] == 1
    assert scores[finding].summary()["n_scored"] == 0 and scores[finding].dice == []


def test_metrics_on_known_maps():
    t = np.zeros((4, 4), bool)
    t[1:3, 1:3] = True
    heat = t.astype(float) + np.linspace(0, 0.1, 16).reshape(4, 4)
    assert pointing_hit(heat, t) and not pointing_hit(-heat, t)
    assert dice(heat > 0.5, t) == 1.0 and iou(heat > 0.5, t) == 1.0
    pred = np.zeros_like(t)
    pred[1, 1:3] = True
    assert dice(pred, t) == pytest.approx(2 * 2 / 6) and iou(pred, t) == pytest.approx(0.5)
    thr, d = best_dice_threshold(heat[None], t[None])
    assert d == 1.0 and 0.1 < thr <= 1.0


def test_roi_grid_refuses_a_grid_the_region_cannot_hold():
    m = np.zeros((40, 40), bool)
    m[5:35, 10:30] = True
    cells = roi_grid_cells(m, 2)
    assert len(cells) == 4 and sum(c.sum() for c in cells) == m.sum()
    with pytest.raises(InputError, match=r"cannot hold a 6 x 6 grid.*at most 5"):
        roi_grid_cells(m, 6)


def test_run_writes_outputs_resumes_and_refuses_other_runs(tiny_adapter, phantom_dir, tmp_path):
    cfg = MethodRunConfig(method="frame_probe", data=str(phantom_dir), out=str(tmp_path / "run"),
                          model="tiny", model_options={"image_size": 112}, progress=False,
                          options={"scale": "2.0"})
    m = run_method(cfg, adapter=tiny_adapter)
    out = tmp_path / "run"
    assert m["site"] == "vision.blocks.1" and m["split_sizes"] == {"train": 18, "val": 6, "test": 6}
    assert json.loads((out / "cfg.json").read_text())["options"] == {"finding": None, "scale": 2.0}
    assert json.loads((out / "metrics.json").read_text())["n_studies"] == 30
    assert len(list((out / "maps").glob("*.safetensors"))) == 6
    loc = m["localisation"]
    assert all(v["n_scored"] + v["n_skipped_no_mask"] + v["n_outside_crop"] >= 0 for v in loc.values())
    assert sum(v["n_scored"] for v in loc.values()) > 0
    # finished: a rerun is a no-op returning the same metrics
    stamp = (out / "metrics.json").stat().st_mtime_ns
    assert run_method(cfg, adapter=tiny_adapter) == m
    assert (out / "metrics.json").stat().st_mtime_ns == stamp
    # interrupted after the features: the rerun reuses them (same part files, same metrics)
    (out / "metrics.json").unlink()
    shutil.rmtree(out / "maps")
    parts = {p.name: p.stat().st_mtime_ns for p in (out / "features").iterdir()}
    m2 = run_method(cfg, adapter=tiny_adapter)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "features").iterdir()} == parts
    assert {k: v for k, v in m2.items() if k != "seconds"} == {k: v for k, v in m.items() if k != "seconds"}
    other = dataclasses.replace(cfg, seed=1)
    with pytest.raises(FileExistsError, match="pass --overwrite"):
        run_method(other, adapter=tiny_adapter)
    with pytest.raises(ValueError, match="valid options: scale, finding"):
        run_method(dataclasses.replace(cfg, options={"scal": 1}), adapter=tiny_adapter, overwrite=True)


def test_real_radiographs_of_any_size_load_with_lung_masks(tiny_adapter, tmp_path):
    rows = [json.loads(line) for line in (REAL_CXR / "metadata.jsonl").read_text().splitlines()]
    keep = {r["study_id"] for r in rows if r["mask_file"] and r["height"] != r["width"]}
    keep |= {r["study_id"] for r in rows if not r["mask_file"]}
    studies = [s for s in open_studies(REAL_CXR) if s.study_id in keep]
    studies = [s for s in studies if s.masks][:2] + [s for s in studies if not s.masks][:1]
    pf = extract_patch_features(tiny_adapter, studies, "vision.blocks.0", tmp_path, progress=False)
    assert pf.feats.shape[:3] == (3, 8, 8) and torch.isfinite(pf.feats).all()
    pm = load_patch_masks(studies, ["lung"], tiny_adapter.patch_geometry, np.ones((3, 1), bool))
    assert pm.known[:, 0].tolist() == [True, True, False] and pm.missing == {"lung": {"no mask": 1}}
    assert 0.1 < pm.fraction[:2].mean() < 0.9
    assert study_findings(studies[2]) == [f for f in studies[2].labels if f != "No Finding"]


@pytest.mark.parametrize("args, message", [
    (["nope"], "unknown reference method 'nope'"),
    (["frame_probe", "--site", "vision.block.3"], "unknown site name"),
    (["frame_probe", "--opt", "scale"], "is not key=value"),
    (["frame_probe", "--split", "0.5,0.5"], "three positive numbers"),
])
def test_cli_bad_input_is_one_line(phantom_dir, tmp_path, args, message):
    import typer

    from eval.methods.cli import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)  # keeps "method" a named subcommand
    res = CliRunner().invoke(app, ["method", *args, "--data", str(phantom_dir), "--out",
                                   str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(fix: " in lines[0]
    assert message in lines[0]
