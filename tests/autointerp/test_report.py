"""The autointerp report end to end: real phantoms captured by the tiny model, a real SAE,
``run_autointerp`` writing heatmap PNGs, examples.jsonl and the HTML, which a real headless
Chromium opens from disk (follows a link, loads the overlays, renders the plotly histogram,
makes no request off the machine)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from autointerp.cli import register
from autointerp.config import AutointerpConfig
from autointerp.pipeline import run_autointerp
from autointerp.report.examples import ExamplesConfig, latent_examples, write_examples
from autointerp.report.html import highlight, write_report
from autointerp.sampling import SampleConfig
from radinterp.sae import SAEConfig, SparseAutoencoder, save_sae
from radinterp.store import open_store
from tests.autointerp.chromium import CHROMIUM, Browser

SITE = "lm.blocks.1.resid_post"
D_SAE = 16


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Even latents are calibrated to fire on the top 10% of image rows, odd ones on text."""
    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import run_capture
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms, load_phantom_studies

    root = tmp_path_factory.mktemp("report")
    ph = generate_phantoms(PhantomConfig(n=12, seed=5, size=112, prior_fraction=0.0),
                           root / "ph", progress=False)
    run_capture(CaptureConfig(model="tiny", data=str(ph), out=str(root / "acts"), sites=[SITE],
                              image_size=112, progress=False, batch_size=12, dtype="float32"))
    store = open_store(root / "acts")
    rows = store.get_rows(SITE, np.arange(store.num_tokens()))  # (N, 64)
    image = torch.from_numpy(store.metadata()["kind"] == 0)
    sae = SparseAutoencoder(SAEConfig(d_in=rows.shape[1], d_sae=D_SAE, k=4, site=SITE))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.nn.functional.normalize(
            torch.randn(rows.shape[1], D_SAE, generator=gen), dim=0))
        sae.b_enc.zero_()
        sae.b_dec.copy_(rows.mean(0))
        pre = sae.preacts(rows)  # (N, D_SAE)
        even = torch.arange(D_SAE) % 2 == 0
        sae.threshold.copy_(torch.where(even, pre[image].quantile(0.9, 0),
                                        pre[~image].quantile(0.9, 0)))
    save_sae(sae, root / "sae")
    cfg = AutointerpConfig(sae=str(root / "sae"), acts=str(root / "acts"), out=str(root / "out"),
                           features="0-3", scorers=["planted"], progress=False)
    run_autointerp(cfg)
    return cfg, load_phantom_studies(ph)


def _examples(out):
    return {r["latent"]: r for r in map(json.loads, (out / "examples.jsonl").open())}


def test_heatmaps_and_marked_text_of_the_drawn_examples(run, tmp_path):
    cfg, studies = run
    out = tmp_path / "copy"
    shutil.copytree(cfg.out, out)
    rows = _examples(out)
    assert sorted(rows) == [0, 1, 2, 3]
    frontal = {s.study_id: Image.open(s.frontal).size for s in studies}
    n_png = n_text = 0
    for f, row in rows.items():
        assert sum(row["hist"]["counts"]) > 0 and len(row["hist"]["edges"]) == 41
        acts = [e["activation"] for e in row["examples"]]
        assert acts == sorted(acts, reverse=True) and 0 < len(acts) <= 8
        for e in row["examples"]:
            if e["heatmap"]:
                img = np.asarray(Image.open(out / e["heatmap"]).convert("RGB")).astype(int)
                assert img.shape[1::-1] == frontal[e["study_id"]]
                assert (np.abs(img[..., 0] - img[..., 2]) > 30).any()  # coloured patches
                assert e["region"].endswith("zone") and e["slot"] == "frontal"
                n_png += 1
            for s in e["sentences"] or []:
                assert s["marked"].replace("<<", "").replace(">>", "") == s["text"]
                assert all(t.strip() in s["text"] for t in s["tokens"])
                assert max(s["values"]) <= e["activation"] + 1e-6
                n_text += 1
            assert e["text_error"] is None
    assert n_png and n_text
    assert {p.name for p in (out / "heatmaps").iterdir()} == {
        e["heatmap"].split("/")[-1] for r in rows.values() for e in r["examples"] if e["heatmap"]}
    # the rows are the strongest examples of the very draw the explainers saw
    from autointerp.records import RecordsConfig, build_records
    from radinterp.sae import load_sae

    rec = build_records(open_store(cfg.acts), load_sae(cfg.sae),
                        RecordsConfig(site=SITE, top_k=cfg.top_k, reservoir=cfg.reservoir))
    scfg = SampleConfig(n_quantiles=cfg.n_quantiles, per_quantile=cfg.per_quantile,
                        n_random=cfg.n_negatives, n_hard=cfg.n_negatives,
                        test_fraction=cfg.test_fraction, seed=cfg.seed)
    drawn = latent_examples(rec, 0, scfg, 8)
    assert [(s, e.study_id) for s, e in drawn] == [(e["split"], e["study_id"])
                                                   for e in rows[0]["examples"]]
    small = write_examples(tmp_path / "small", rec, [0], studies, scfg,
                           store=open_store(cfg.acts), cfg=ExamplesConfig(max_side=64))
    [row] = map(json.loads, small.open())
    assert [e["study_id"] for e in row["examples"]] == [e["study_id"] for e in rows[0]["examples"]]
    png = Image.open(tmp_path / "small" / row["examples"][0]["heatmap"])
    w, h = frontal[row["examples"][0]["study_id"]]
    assert max(png.size) == 64 and abs(png.size[0] / png.size[1] - w / h) < 0.05
    # the HTML is rebuilt from the copied folder alone, through the CLI too
    before = (out / "index.html").read_text()
    (out / "index.html").unlink()
    shutil.rmtree(out / "features")
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    res = CliRunner().invoke(app, ["autointerp", "--sae", "x", "--acts", "x", "--out", str(out),
                                   "--report-only"])
    assert res.exit_code == 0, res.output
    assert (out / "index.html").read_text() == before
    assert sorted(p.name for p in (out / "features").iterdir()) == [f"{i}.html" for i in range(4)]
    with pytest.raises(FileNotFoundError, match="--out folder"):
        write_report(tmp_path / "nothing")


def test_highlight_escapes_and_marks_values():
    got = highlight('x<y & <<pleural effusion>> "q"', ["pleural", " effusion"], [1.0, 2.5], 2.5)
    assert got.startswith("x&lt;y &amp; <mark") and "&quot;q&quot;" in got
    assert "pleural effusion<sub>2.50</sub></mark>" in got and 'title="1.000, 2.500"' in got


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH to open the report in")
def test_report_opens_offline_in_headless_chromium(run):
    cfg, _ = run
    with Browser() as b:
        b.goto(f"file://{cfg.out}/index.html")
        assert b.eval("document.querySelectorAll('#features tbody tr').length") == 4
        visible = ("Array.from(document.querySelectorAll('#features tbody tr'))"
                   ".filter(r => r.style.display !== 'none').length")
        b.eval("const f = document.getElementById('filter'); f.value = 'no such text';"
               "f.dispatchEvent(new Event('input'))")
        assert b.eval(visible) == 0
        b.eval("document.querySelector('th:nth-child(1)').click();"
               "document.querySelector('th:nth-child(1)').click()")  # latent, descending
        assert b.eval("document.querySelector('#features tbody tr a').textContent") == "3"
        b.eval("Array.from(document.querySelectorAll('#features a')).find("
               "a => a.textContent === '0').click()")
        b.wait_load()
        assert b.eval("location.pathname").endswith("/features/0.html")
        assert b.poll("!!document.querySelector('#hist .plot-container svg.main-svg')")
        assert b.poll("document.querySelectorAll('#hist .point').length") > 0
        imgs = b.eval("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
        assert imgs and all(done and width > 0 for done, width in imgs)
        assert b.eval("document.querySelectorAll('mark sub').length") > 0
    assert all(u.startswith(("file://", "data:")) for u in b.requests), b.requests
    assert any(u.endswith("/plotly.min.js") for u in b.requests)
    assert sum(u.endswith(".png") for u in b.requests) == len(imgs)
