"""Steering at several layers at once, the ``steered`` feature selection, and ablation studies
drawn with the finding (``n_with``)."""

from __future__ import annotations

import pytest
import torch

from radinterp.labels import is_positive
from steering.evaluate import SteerConfig, run_steering
from steering.methods import SteerSpec
from steering.sites import build_at, merge, random_at

from .conftest import N_STORE, SITE, SITE14, make_sae


@pytest.fixture(scope="module")
def saes2(tmp_path_factory):
    from radinterp.sae import save_sae

    root = tmp_path_factory.mktemp("steer2")
    return [str(save_sae(make_sae(site=s, seed=i), root / f"sae{i}")) for i, s in enumerate([SITE14, SITE])]


def _auroc_label(store_dir) -> str:
    """A label the store's studies hold on both sides of the AUROC split."""
    from radinterp.store import open_store
    from steering.directions import LabelTable
    from steering.selection import rank_by_auroc
    from steering.setup import default_labels

    store = open_store(store_dir)
    table = LabelTable.from_studies(store.open_studies(), default_labels())
    codes = (table.study_ids, torch.zeros(len(table.study_ids), 4))
    for lab in default_labels():
        try:
            rank_by_auroc(store, None, SITE, table, lab, top=1, codes=codes)
            return lab
        except ValueError:
            continue
    pytest.skip("no label on both sides of the store's split")


def test_layers_edit_every_site_with_its_own_scale(demo, store_dir, saes2, phantom_dir, tmp_path):
    finding = _auroc_label(store_dir)
    cfg = SteerConfig(data=str(phantom_dir), out=str(tmp_path / "out"), sae=",".join(saes2), acts=str(store_dir),
                      sites=[SITE14, SITE], findings=[finding], methods=["add"], coefs=[1.0],
                      selection=["auroc"], n=2, n_random=1, max_new_tokens=2, batch_size=32, progress=False)
    result = run_steering(cfg, adapter=demo)
    assert result["sites"] == [SITE14, SITE] and set(result["stats"]) == {SITE14, SITE}
    assert result["stats"][SITE14] != result["stats"][SITE]  # each site's own typical norm
    add = [r for r in result["rows"] if r["method"] == "add"]
    assert add and all(len(r["feature"]) == 2 for r in add)  # one latent per layer
    assert {r["split"] for r in add} == {"select", "test"}
    test_add = next(r for r in add if r["split"] == "test")
    assert test_add["random_control_rate"] is not None and test_add["reversed_rate"] is not None

    from steering.setup import prepare

    env = prepare(cfg, demo)
    st = build_at(env.resources, SteerSpec(method="diffmean", coef=1.0, where="image", finding=finding))
    assert set(st.edits) == {SITE14, SITE} and len(st.parts) == 2
    rnd = random_at(env.resources, 1.0, "image", seed=0)
    d14, d15 = (p.direction.vector("frontal") for p in rnd.parts)
    assert abs(float(d14.norm()) - 1) < 1e-5 and abs(float(d15.norm()) - 1) < 1e-5
    assert float(d14 @ d15) < 0.5  # a direction of its own per site
    with pytest.raises(ValueError, match="distinct sites"):
        merge([st.parts[0], st.parts[0]])


def test_steered_selection_generates_each_candidate_and_picks_one(demo, store_dir, sae_dir, phantom_dir, tmp_path):
    finding = _auroc_label(store_dir)
    cfg = SteerConfig(data=str(phantom_dir), out=str(tmp_path / "out"), sae=str(sae_dir), acts=str(store_dir),
                      findings=[finding], methods=["add"], coefs=[1.0], selection=["auroc", "steered"], n=2,
                      n_random=1, max_new_tokens=2, batch_size=48, progress=False)
    result = run_steering(cfg, adapter=demo)
    info = result["selection"][finding]
    rates = [c["steered_rate"] for c in info["candidates"]]
    assert len(rates) > 1 and all(r is not None and 0 <= r <= 1 for r in rates)
    best = max(info["candidates"], key=lambda c: c["steered_rate"])
    assert info["picked"]["steered"] in [c["feature"] for c in info["candidates"]]
    assert next(c for c in info["candidates"] if c["feature"] == info["picked"]["steered"])["steered_rate"] \
        == best["steered_rate"]
    # both selections have rows of their own on both splits, even where they pick one latent
    assert {(r["selection"], r["split"]) for r in result["rows"]} == \
        {(s, sp) for s in ("auroc", "steered") for sp in ("select", "test")}


def test_n_with_draws_studies_with_the_finding(demo, store_dir, sae_dir, phantom_dir, studies, tmp_path):
    from steering.setup import prepare

    stored = {s.study_id for s in studies[:N_STORE]}
    held = [s for s in studies if s.study_id not in stored]
    lab = max(["Pleural Effusion", "Edema", "Cardiomegaly", "Pacemaker"],
              key=lambda x: sum(is_positive(s.labels, x) for s in held))
    n_pos = sum(is_positive(s.labels, lab) for s in held)
    assert n_pos >= 1
    kw = dict(data=str(phantom_dir), out=str(tmp_path / "o"), sae=str(sae_dir), acts=str(store_dir), features=[1],
              findings=[lab], methods=["ablate"], selection=[], n=2, seed=3)
    base = prepare(SteerConfig(**kw), demo)
    more = prepare(SteerConfig(**kw, n_with=n_pos), demo)
    count = lambda env: sum(is_positive(s.labels, lab) for sp in env.splits.values() for s in sp)  # noqa: E731
    assert count(more) == n_pos and count(more) >= count(base)
    assert sum(len(v) for v in more.splits.values()) == 2 + n_pos - count(base)


@pytest.mark.parametrize("args, says", [
    (["--layers", "15,15"], "names a layer twice"),
    (["--layers", "14,15"], "effect and steered generate at one site"),  # default selection auroc,effect
    (["--layers", "14,15", "--selection", "auroc"], "no SAE trained at lm.blocks.14"),  # one SAE, two layers
    (["--layers", "14,15", "--selection", "auroc", "--feature", "3", "--sae2"], "each layer has its own SAE"),
])
def test_bad_layers_fail_in_one_line(phantom_dir, saes2, tmp_path, args, says):
    import typer
    from typer.testing import CliRunner

    from steering.cli import register

    app = typer.Typer()
    register(app)
    app.command("noop")(lambda: None)
    sae = ",".join(saes2) if "--sae2" in args else saes2[1]
    args = [a for a in args if a != "--sae2"]
    res = CliRunner().invoke(app, ["steer", "--data", str(phantom_dir), "--out", str(tmp_path / "o"),
                                   "--sae", sae, "--method", "add", "--finding", "Edema", *args])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], res.output
    assert not (tmp_path / "o" / "generations.jsonl").exists()
