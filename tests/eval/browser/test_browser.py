"""The feature browser end to end on small real runs: the tiny release's SAE explained by
``run_autointerp``, steered by ``run_steering`` (tiny model, held-out phantoms) and bridged to
CSR / INSIGHT by ``run_bridge`` (the session's ``bridge_run``); the site is opened from disk in
a real headless Chromium (filters, sort, a link to a feature with steering and bridge data,
overlays and maps loaded, plotly drawn, no request off the machine)."""

from __future__ import annotations

import json
import shutil
from html import escape

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from eval.browser import BrowserConfig, build_browser
from eval.browser.bridge_panel import best_for, matches, radiomic_pairs
from eval.browser.cli import register
from eval.browser.runs import check_same_sae
from radinterp.errors import InputError
from tests.autointerp.chromium import CHROMIUM, Browser


@pytest.fixture(scope="module")
def runs(tiny_release, bridge_run, tiny_adapter, tmp_path_factory):
    """(root, feature with a steering run and a bridge map, its finding, features without either)."""
    from autointerp.config import AutointerpConfig
    from autointerp.pipeline import run_autointerp
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms
    from radinterp.data.phantoms.findings import finding_label
    from steering.evaluate import SteerConfig, run_steering

    from eval.methods.io import load_safetensors

    bridge_out, b = bridge_run
    fires = np.nan_to_num(load_safetensors(bridge_out / "parts" / "summaries.safetensors")[0]
                          ["trained.image"].numpy()).max(0) > 0  # (d_sae,) fires on image patches
    pairs = {p["target"]: p["feature"] for p in b["associations"]["matching"]["finding"]["image"]["trained"]["pairs"]}
    # a finding-matched feature that fires on image patches, with a report study's maps side by side
    ex, feature = next((ex, pairs[f"finding:{ex['finding']}"]) for ex in b["localisation"]["examples"]
                       if fires[pairs.get(f"finding:{ex['finding']}", 0)])
    plain = [f for f in range(b["d_sae"]) if not matches(b, f) and not best_for(b, f)
             and not radiomic_pairs(b, f)][:2]
    assert len(plain) == 2
    root = tmp_path_factory.mktemp("browser")
    run_autointerp(AutointerpConfig(sae=str(tiny_release.sae), acts=str(tiny_release.acts),
                                    out=str(root / "ai"), features=",".join(map(str, [feature, *plain])),
                                    scorers=["planted"], progress=False))
    held = generate_phantoms(PhantomConfig(n=6, seed=11, size=112, prior_fraction=0.0), root / "held",
                             progress=False)
    run_steering(SteerConfig(data=str(held), out=str(root / "steer"), model="tiny", sae=str(tiny_release.sae),
                             acts=str(tiny_release.acts), features=[feature],
                             findings=[finding_label(ex["finding"])], selection=["auroc"], coefs=[1.0, 4.0],
                             n=6, n_random=1, max_new_tokens=6, progress=False), adapter=tiny_adapter)
    return root, feature, finding_label(ex["finding"]), plain


def _build(tiny_release, bridge_run, root, out):
    return build_browser(BrowserConfig(out=str(out), autointerp=str(root / "ai"), steering=str(root / "steer"),
                                       bridge=str(bridge_run[0]), sae_eval=str(tiny_release.eval_out)))


@pytest.fixture(scope="module")
def site(tiny_release, bridge_run, runs):
    root = runs[0]
    return _build(tiny_release, bridge_run, root, root / "browser")


def test_feature_pages_carry_steering_bridge_and_the_eval_headline(tiny_release, bridge_run, runs, site):
    root, feature, target, plain = runs
    out = site.parent
    steer = json.loads((root / "steer" / "steering.json").read_text())
    rows = [r for r in steer["rows"] if r["feature"] == feature and r["split"] == "test"]
    assert rows
    page = (out / "features" / f"{feature}.html").read_text()
    assert 'id="steer"' in page and "random direction, same norm" in page and "unsteered" in page
    for r in rows:  # the test-split rates, beside the random direction's and the unsteered rate
        assert f'<td class="num">{r["target_rate"]:.2f}</td><td class="num">{r["random_control_rate"]:.2f}</td>' in page
    gens = [json.loads(line) for line in (root / "steer" / "generations.jsonl").open()]
    steered = [g for g in gens if g["split"] == "test" and g["arm"].startswith(f"add|{target}|{feature}|")]
    assert steered and f"<td>{steered[0]['study_id']}</td><td>" in page and escape(steered[0]["text"]) in page
    b = bridge_run[1]
    [m] = [m for m in matches(b, feature) if m["source"] == "finding" and m["scope"] == "image"]
    assert f"{m['trained']['report']:.3f}" in page and f"{m['random']['report']:.3f}" in page
    maps = [ex for ex in b["localisation"]["examples"] if f"finding:{ex['finding']}" == m["target"]]
    for name, file in maps[0]["images"].items():  # SAE, random SAE, CSR, INSIGHT, mask side by side
        assert f"src='../bridge_png/{file}'" in page and (out / "bridge_png" / file).stat().st_size > 0
    for f in plain:  # no steering, no bridge data: said, not drawn empty
        other = (out / "features" / f"{f}.html").read_text()
        assert "not steered in this steering run" in other and "no bridge match" in other
        assert 'id="steer"' not in other and "bridge_png" not in other
    index = site.read_text()
    from eval.sae_eval.summary import summary_lines

    metrics = json.loads((tiny_release.eval_out / "metrics.json").read_text())
    ev = next(line for line in summary_lines(metrics) if "explained_variance" in line)
    assert f"{escape(ev)}\n" in index.split("<details>")[0]  # the SAE eval headline: trained vs random
    assert index.count('href="features/') == 3
    # the autointerp folder is untouched and its own report still renders
    assert not (root / "ai" / "bridge_png").exists()
    assert "Feature browser" not in (root / "ai" / "index.html").read_text()
    # a rebuild writes the same site
    before = {p.name: p.read_text() for p in (out / "features").iterdir()}
    assert _build(tiny_release, bridge_run, root, out).read_text() == index
    assert before == {p.name: p.read_text() for p in (out / "features").iterdir()}


def test_bad_inputs_name_the_fix(tiny_release, bridge_run, runs, tmp_path):
    from radinterp.sae import load_sae, save_sae

    root = runs[0]
    with pytest.raises(InputError, match="is the autointerp folder"):
        build_browser(BrowserConfig(out=str(root / "ai"), autointerp=str(root / "ai")))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="empty or new --out"):
        build_browser(BrowserConfig(out=str(tmp_path / "busy"), autointerp=str(root / "ai")))
    with pytest.raises(InputError, match="finished radinterp steer run"):
        build_browser(BrowserConfig(out=str(tmp_path / "o"), autointerp=str(root / "ai"),
                                    steering=str(tmp_path / "busy")))
    same = tmp_path / "same"
    shutil.copytree(tiny_release.sae, same)
    check_same_sae(str(tiny_release.sae), str(same), "bridge run")  # same bytes elsewhere: fine
    sae = load_sae(tiny_release.sae)
    with __import__("torch").no_grad():
        sae.W_enc.mul_(-1)
    save_sae(sae, tmp_path / "other")
    with pytest.raises(InputError, match="other weights"):
        check_same_sae(str(tiny_release.sae), str(tmp_path / "other"), "bridge run")
    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    res = CliRunner().invoke(app, ["browse", "--autointerp", str(tmp_path / "missing"), "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and res.stderr.strip().startswith("error: --autointerp") and "(fix: " in res.stderr
    res = CliRunner().invoke(app, ["browse", "--autointerp", str(root / "ai"), "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "cli" / "index.html").is_file() and "no steering run given" in \
        (tmp_path / "cli" / "features" / f"{runs[1]}.html").read_text()


def _set(b: Browser, control: str, value: str) -> None:
    """Set the filter control ``control`` (a JS expression) to ``value`` as a user would."""
    b.eval(f"{{ const c = {control}; c.value = '{value}'; c.dispatchEvent(new Event('input')); }}")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH to open the browser in")
def test_browser_opens_offline_in_headless_chromium(runs, site):
    _, feature, target, plain = runs
    visible = ("Array.from(document.querySelectorAll('#features tbody tr'))"
               ".filter(r => r.style.display !== 'none').map(r => r.cells[0].textContent)")
    with Browser() as b:
        b.goto(f"file://{site}")
        assert sorted(b.eval(visible), key=int) == sorted(map(str, [feature, *plain]), key=int)
        label = target.lower()
        labels = "Array.from(document.querySelectorAll('select[data-op=has]')).pop()"
        assert b.eval(f"Array.from({labels}.options).some(o => o.value === '{label}')")
        _set(b, labels, label)
        assert str(feature) in b.eval(visible)
        col = b.eval("Array.from(document.querySelector('#features thead tr').cells)"
                     ".findIndex(c => c.textContent === 'labels')")
        assert b.eval(f"Array.from(document.querySelectorAll('#features tbody tr')).filter(r => r.style.display "
                      f"!== 'none').every(r => r.cells[{col}].dataset.filter.split('|').includes('{label}'))")
        _set(b, labels, "")
        freq = "document.querySelector('input[data-op=min]')"
        _set(b, freq, "2")  # frequency >= 2: none
        assert b.eval(visible) == [] and b.eval("document.getElementById('shown').textContent") == "0 of 3 shown"
        _set(b, freq, "")
        b.eval("{ const t = document.querySelector('#features thead tr').cells[0]; t.click(); t.click(); }")
        assert b.eval(visible) == sorted(map(str, [feature, *plain]), key=int, reverse=True)
        b.eval(f"Array.from(document.querySelectorAll('#features a')).find(a => a.textContent === '{feature}').click()")
        b.wait_load()
        assert b.eval("location.pathname").endswith(f"/features/{feature}.html")
        for div in ("hist", "steer"):
            assert b.poll(f"!!document.querySelector('#{div} .plot-container svg.main-svg')"), div
        assert b.poll("document.querySelectorAll('#steer .scatterlayer .trace').length") >= 2
        imgs = b.eval("Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
        assert any("bridge_png" in s for s, _, _ in imgs) and any("heatmaps" in s for s, _, _ in imgs)
        assert all(done and width > 0 for _, done, width in imgs), imgs
    assert all(u.startswith(("file://", "data:")) for u in b.requests), b.requests
    assert sum(u.endswith(".png") for u in b.requests) == len(imgs)
