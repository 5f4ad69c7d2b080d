"""The bridge end to end on a tiny real release: phantoms captured with the tiny model, an SAE
trained on the store (``tiny_release``), CSR and INSIGHT fitted on the same phantoms."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from eval.bridges import BridgeConfig, run_bridge
from eval.bridges.associate import report_split, spearman_columns
from eval.methods.io import load_safetensors, save_safetensors_atomic
from radinterp.errors import InputError
from radinterp.metrics import auroc_columns
from tests.eval.conftest import BRIDGE_SPLIT, bridge_cfg, capture_twins

SPLIT = BRIDGE_SPLIT
_cfg = bridge_cfg


@pytest.fixture(scope="module")
def methods(bridge_methods):
    return bridge_methods


@pytest.fixture(scope="module")
def bridge(bridge_run):
    return bridge_run


@pytest.fixture(scope="module")
def twins(bridge_twins):
    return bridge_twins


def test_bridge_numbers_are_held_out_and_recomputable(tiny_release, bridge):
    from radinterp.sae import load_sae
    from radinterp.store import open_store

    out, r = bridge
    sp = r["split"]
    assert sp["n_select"] + sp["n_report"] == sp["n_store_studies"] == 24
    assert r["methods"]["csr"]["n_not_in_store"] == 0 and r["methods"]["csr"]["n_report_missing"] == 0
    assert r["l0"]["random"] == pytest.approx(r["l0"]["trained"], rel=0.05)
    # the image summaries are each feature's max over the study's frontal patch tokens
    t, meta = load_safetensors(out / "parts" / "summaries.safetensors")
    store, sae = open_store(tiny_release.acts), load_sae(tiny_release.sae)
    sid = meta["study_ids"][3]
    m = store.study_rows(sid, token_kinds=["image"])
    x = store.study_acts(r["site"], sid, token_kinds=["image"])[torch.from_numpy(m["image_slot"] == 0)]
    torch.testing.assert_close(t["trained.image"][3], sae.encode(x).max(0).values, rtol=1e-4, atol=1e-5)
    # a reported AUROC is the chosen feature's AUROC on the report studies, recomputed here
    targets = r["associations"]["targets"]
    scored = [n for n, v in targets.items() if n.startswith("finding:") and v["image"]["trained"].get("auroc") is not None]
    assert scored, targets.keys()
    from radinterp.data.sources import open_studies
    from eval.methods.masks import study_findings
    from eval.methods.splits import make_split

    test_ids = set(make_split(meta["study_ids"], SPLIT, 0).test)
    rows = {s: i for i, s in enumerate(meta["study_ids"])}
    studies = {s.study_id: s for s in open_studies(tiny_release.phantoms)}
    rep = sorted(report_split(sorted(test_ids), 0.6, 0)[1])
    assert rep == r["split"]["report_ids"] and set(rep) < test_ids  # reported: methods' test studies
    for name in scored:
        v = targets[name]["image"]["trained"]
        assert v["n_report"] == len(rep) == sp["n_report"] and v["n_select"] == 24 - len(rep)
        y = np.array([name.split(":", 1)[1] in study_findings(studies[s]) for s in rep])
        x = t["trained.image"].numpy()[[rows[s] for s in rep]][:, [v["feature"]]]
        assert v["auroc"] == pytest.approx(auroc_columns(x, y)[0])
        assert {"perm_mean", "perm_q95", "p_perm", "q_perm"} <= set(v)
        assert "random" in targets[name]["image"] and "trained" in targets[name]["report"]
    # every CSR concept is a continuous target; the matching is one-to-one
    for src in ("csr", "insight", "finding"):
        pairs = r["associations"]["matching"][src]["image"]["trained"]["pairs"]
        assert len({p["feature"] for p in pairs}) == len(pairs) > 0
        assert all(p["perm_q95"] is None or -1 <= p["perm_q95"] <= 1 for p in pairs)
    assert all(n.startswith(("csr:", "insight:", "finding:", "label:")) for n in targets)
    assert r["radiomics"]["skipped"].startswith("no radiomics run")


def test_bridge_maps_localisation_and_html(bridge):
    out, r = bridge
    loc = r["localisation"]
    assert loc["n_report_studies"] == r["split"]["n_report"]
    for f, v in loc["findings"].items():
        for name, s in v["sources"].items():
            assert s["n_scored"] + sum(s["skipped"].values()) - s["skipped"].get("silent map (mask share)", 0) \
                == v["n_with_mask"], (f, name)
            assert s["pointing_game"] is None or 0 <= s["pointing_game"] <= 1
            assert s["iou_matched"] is None or 0 <= s["iou_matched"] <= 1
    assert {"sae", "random_sae", "csr", "insight"} <= {s for v in loc["findings"].values() for s in v["sources"]}
    for c, d in loc["map_agreement"].items():
        assert set(d) == {"trained", "random"}
        for e in d.values():
            assert e["n"] + sum(e["skipped"].values()) == r["split"]["n_report"]
            assert e["spearman"] is None or -1 <= e["spearman"] <= 1
    assert loc["examples"] and any({"csr", "insight"} <= set(ex["images"]) for ex in loc["examples"])
    for ex in loc["examples"]:
        assert {"mask", "sae", "random_sae"} <= set(ex["images"])
        assert all((out / "png" / f).stat().st_size > 0 for f in ex["images"].values())
    html = (out / "bridge.html").read_text()
    offline = "plotly" in html.lower() and 'src="https://' not in html  # plotly.js inline
    assert offline and "data:image/png;base64" in html
    # a rerun is a no-op; a different config in the same folder is refused
    stamp = (out / "bridge.json").stat().st_mtime_ns
    again = run_bridge(BridgeConfig(**json.loads((out / "cfg.json").read_text())))
    assert again == r and (out / "bridge.json").stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_bridge(BridgeConfig(**{**json.loads((out / "cfg.json").read_text()), "seed": 1}))


def test_spearman_columns_matches_scipy():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=30)
    x[:, 2] = 1.0
    got = spearman_columns(x, y)
    assert got[0] == pytest.approx(spearmanr(x[:, 0], y).statistic) and np.isnan(got[2])


def _rewrite_maps(src, dst, keep: int | None, rename: bool):
    shutil.copytree(src, dst)
    files = sorted((dst / "maps").glob("*.safetensors"))
    for i, f in enumerate(files):
        if keep is not None and i >= keep and not rename:
            f.unlink()
        elif rename and (keep is None or i >= keep):
            t, meta = load_safetensors(f)
            save_safetensors_atomic(f, t, {**meta, "study_id": "elsewhere-" + meta["study_id"]})
    return dst


def test_bad_input_errors_and_counted_skips(tiny_release, methods, bridge, twins, tmp_path):
    with pytest.raises(InputError, match="not lm.blocks.0.resid_post|store holds sites"):
        run_bridge(_cfg(tiny_release, tmp_path / "a", [], site="lm.blocks.0.resid_post"))
    sae = tmp_path / "sae"
    shutil.copytree(tiny_release.sae, sae)
    cfg = json.loads((sae / "cfg.json").read_text())
    cfg["metadata"]["model_name"] = cfg["metadata"]["radinterp"]["model"] = "demo"
    (sae / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="same model"):
        run_bridge(BridgeConfig(sae=str(sae), acts=str(tiny_release.acts), out=str(tmp_path / "b"),
                                progress=False))
    # studies that lack some of the store's (the twins' list holds 22 of its 24)
    from radinterp.store.format import StoreError

    with pytest.raises(StoreError, match="2 of the store's studies are not in"):
        run_bridge(_cfg(tiny_release, tmp_path / "s", [], data=str(twins.parent / "twins.jsonl")))
    # the twins of other studies than the store holds
    other_twins = capture_twins(tiny_release, tmp_path / "other_twins", keep=2, prefix="other-")
    with pytest.raises(InputError, match="twins of other studies"):
        run_bridge(_cfg(tiny_release, tmp_path / "t", [], twins=str(other_twins)))
    with pytest.raises(InputError, match="--twins .* does not exist"):
        run_bridge(_cfg(tiny_release, tmp_path / "t2", [], twins=str(tmp_path / "nowhere")))
    other = _rewrite_maps(methods / "csr", tmp_path / "other", None, rename=True)
    with pytest.raises(InputError, match="other studies"):
        run_bridge(_cfg(tiny_release, tmp_path / "c", [other]))
    # partly other studies, and a study missing from INSIGHT: counted, not fatal
    part = _rewrite_maps(methods / "csr", tmp_path / "part", 7, rename=True)
    fewer = _rewrite_maps(methods / "insight", tmp_path / "fewer", 3, rename=False)
    r = run_bridge(_cfg(tiny_release, tmp_path / "d", [part, fewer], n_examples=0))
    n_maps = len(list((methods / "csr" / "maps").glob("*.safetensors")))
    assert r["methods"]["csr"]["n_not_in_store"] == n_maps - 7
    assert r["methods"]["insight"]["n_studies_with_maps"] == 3
    kept = {load_safetensors(f)[1]["study_id"] for f in (fewer / "maps").glob("*.safetensors")}
    want = [sid for sid in r["split"]["report_ids"] if sid not in kept]
    assert r["methods"]["insight"]["n_report_missing"] == len(want) > 0
    # the studies INSIGHT lacks are skipped and counted in its localisation, never scored
    skipped = sum(v["sources"]["insight"]["skipped"].get("no insight map for the study", 0)
                  for v in r["localisation"]["findings"].values())
    scored_or_skipped = sum(v["n_with_mask"] for v in r["localisation"]["findings"].values())
    assert 0 < skipped <= scored_or_skipped


def test_iou_at_matched_area_and_mask_share():
    from eval.bridges.localise import iou_matched, mask_share

    target = np.zeros((4, 4), bool)
    target[1, 1:3] = True  # 2 patches
    heat = np.zeros((4, 4))
    heat[1, 1], heat[1, 2], heat[3, 3] = 3.0, 2.0, 1.0
    assert iou_matched(heat, target) == 1.0 and mask_share(heat, target) == pytest.approx(5 / 6)
    heat[1, 2] = 0.5  # the second-highest patch now misses the mask
    assert iou_matched(heat, target) == pytest.approx(1 / 3)
    assert iou_matched(np.zeros((4, 4)), target) is None and mask_share(np.zeros((4, 4)), target) is None


def test_linear_probe_beside_every_association(tiny_release, bridge):
    from eval.bridges.probe import logistic_scores, ridge_scores
    from eval.methods.masks import study_findings
    from radinterp.data.sources import open_studies
    from radinterp.store import open_store

    out, r = bridge
    t, meta = load_safetensors(out / "parts" / "summaries.safetensors")
    rows = {s: i for i, s in enumerate(meta["study_ids"])}
    rep = r["split"]["report_ids"]
    sel = [s for s in meta["study_ids"] if s not in set(rep)]
    targets = r["associations"]["targets"]
    assert all({"probe", "probe_max"} <= set(v[sc]) for v in targets.values() for sc in ("image", "report"))
    # a planted finding's probe AUROC: logistic regression on the selection studies' mean image
    # residual, scored on the report studies (recomputed here from the saved residuals; the
    # bridge fits the 0/1 targets jointly, whose optimum is each column's own)
    studies = {s.study_id: s for s in open_studies(tiny_release.phantoms)}
    name = next(n for n, v in targets.items()
                if n.startswith("finding:") and v["image"]["probe"].get("auroc") is not None)
    y = {s: float(name.split(":", 1)[1] in study_findings(st)) for s, st in studies.items()}
    x = t["resid_mean.image"].numpy().astype(np.float64)
    score = logistic_scores(x[[rows[s] for s in sel]], np.array([y[s] for s in sel]),
                            x[[rows[s] for s in rep]], 0.1)
    got = targets[name]["image"]["probe"]
    assert got["auroc"] == pytest.approx(auroc_columns(score[:, None], np.array([y[s] for s in rep]) > 0.5)[0],
                                         abs=0.05)
    assert {"perm_q95", "p_perm", "q_perm"} <= set(got)
    # the residual is the mean over the frontal image's patch rows
    store = open_store(r["acts"])
    m = store.study_rows(sel[0], token_kinds=["image"])
    acts = store.study_acts(r["site"], sel[0], token_kinds=["image"])[torch.from_numpy(m["image_slot"] == 0)]
    torch.testing.assert_close(t["resid_mean.image"][rows[sel[0]]], acts.float().mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(t["resid_max.image"][rows[sel[0]]], acts.float().max(0).values)
    # the ridge probe of continuous targets reads out a linear signal on held-out rows
    rng = np.random.default_rng(0)
    xs, w = rng.normal(size=(80, 40)), rng.normal(size=40)
    pred = ridge_scores(xs[:60], xs[:60] @ w, xs[60:], 1e-3)
    assert spearman_columns(pred[:, None], xs[60:] @ w)[0] > 0.95
    assert "linear probe" in (out / "bridge.md").read_text()


def test_counterfactual_twins_and_localisation_winners(tiny_release, bridge):
    from eval.methods.masks import study_findings
    from radinterp.data.sources import open_studies
    from radinterp.store import open_store

    out, r = bridge
    found = {s.study_id: study_findings(s) for s in open_studies(tiny_release.phantoms)}
    t, meta = load_safetensors(out / "parts" / "summaries.safetensors")
    rows = {s: i for i, s in enumerate(meta["study_ids"])}
    rep = r["split"]["report_ids"]
    twin_ids = [str(s) for s in open_store(r["twins"]["root"]).studies()]
    assert r["twins"]["n_in_store"] == len(twin_ids) == 22
    assert r["twins"]["n_report_without_twin"] == sum(s not in twin_ids for s in rep) == 2
    loc = r["localisation"]
    cf = loc["counterfactual"]
    assert cf["n_report_with_twin"] == sum(s in twin_ids for s in rep)
    pairs = r["associations"]["matching"]["finding"]["image"]["trained"]["pairs"]
    matched = {p["target"]: p["feature"] for p in pairs}
    checked = 0
    for f, v in cf["findings"].items():
        d = v["trained"]
        if "positive" not in d:
            continue
        assert d["feature"] == matched[f"finding:{f}"]
        for side in ("positive", "negative"):
            e = d[side]
            n_side = v["n_positive"] if side == "positive" else len(rep) - v["n_positive"]
            assert e["n_pairs"] + e["n_no_twin"] == n_side
            assert e["drop_rate"] is None or 0 <= e["drop_rate"] <= 1
        if d["positive"]["n_pairs"]:
            # the study side of a pair is the feature's max over the frontal patches (its summary)
            pos = [s for s in rep if f in found[s] and s in twin_ids]
            want = t["trained.image"].numpy()[[rows[s] for s in pos], d["feature"]].mean()
            assert d["positive"]["mean_study"] == pytest.approx(float(want), rel=1e-4, abs=1e-6)
            assert d["positive"]["mean_twin"] >= 0
            checked += 1
    assert checked
    # the study-minus-twin map is a map source; report studies without a twin are counted skips
    cf_src = [v["sources"]["sae_cf"] for v in loc["findings"].values() if v["n_with_mask"]]
    assert sum(s["skipped"].get("no twin in --twins", 0) for s in cf_src) > 0
    assert sum(s["n_scored"] for s in cf_src) > 0
    # winners: per finding, the source(s) with the highest pointing game
    w = loc["winners"]
    for f, d in w["per_finding"].items():
        vals = {s: x["pointing_game"] for s, x in loc["findings"][f]["sources"].items()
                if x["pointing_game"] is not None}
        assert d["pointing_game"] == sorted(s for s, x in vals.items() if x == max(vals.values()))
    assert sum(w["wins"]["pointing_game"].values()) >= len(w["per_finding"])
    html = (out / "bridge.html").read_text()
    assert "healthy twin" in html and "localises which finding best" in html
    assert any("sae_cf" in ex["images"] for ex in loc["examples"])
    md = (out / "bridge.md").read_text()
    assert "findings won" in md and "drop rate trained" in md
