"""``radinterp steer`` end to end on a handful of studies, resumability, and bad input."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from radinterp.errors import error_line
from radinterp.labels import is_positive
from steering.cli import register
from steering.evaluate import GENERATIONS, SteerConfig, run_steering

from .conftest import make_sae


@pytest.fixture(scope="module")
def app():
    a = typer.Typer()
    register(a)
    a.command("noop")(lambda: None)  # a second command keeps "steer" a subcommand
    return a


def _finding(studies) -> str:
    """A label that the store's studies hold on some and not on others."""
    from steering.setup import default_labels

    stored, held = studies[:8], studies[8:]
    return next(lab for lab in default_labels()
                if 0 < sum(is_positive(s.labels, lab) for s in stored) < len(stored)
                and not any(is_positive(s.labels, lab) for s in held))


def test_steer_end_to_end_and_resume(demo, studies, phantom_dir, store_dir, sae_dir, tmp_path):
    finding = _finding(studies)
    cfg = SteerConfig(data=str(phantom_dir), out=str(tmp_path / "out"), sae=str(sae_dir), acts=str(store_dir),
                      features=[5], findings=[finding], methods=["add", "diffmean", "prompt"], coefs=[1.0],
                      selection=[], n=4, n_random=1, max_new_tokens=4, batch_size=32, progress=False)
    result = run_steering(cfg, adapter=demo)
    out = tmp_path / "out"
    rows = result["rows"]
    assert {r["split"] for r in rows} == {"select", "test"}
    assert {r["method"] for r in rows} == {"add", "diffmean", "prompt"}
    keys = {"target", "method", "coef", "target_rate", "baseline_rate", "random_control_rate", "reversed_rate",
            "collateral_flip_rate", "perplexity", "split"}
    assert all(keys <= set(r) for r in rows)
    test_add = next(r for r in rows if r["split"] == "test" and r["method"] == "add")
    assert test_add["reversed_rate"] is not None and test_add["random_control_rate"] is not None
    assert all(r["perplexity"] > 1 for r in rows if r["n"])
    gens = (out / GENERATIONS).read_text().splitlines()
    assert len(gens) == len({(json.loads(g)["split"], json.loads(g)["arm"], json.loads(g)["study_id"]) for g in gens})
    assert {json.loads(g)["arm"] for g in gens} >= {"baseline"}
    html = (out / "steering.html").read_text()
    assert "plotly" in html and 'src="https://cdn' not in html  # script embedded: opens offline
    mtime = (out / GENERATIONS).stat().st_mtime_ns
    again = run_steering(cfg, adapter=demo)  # finished rows are skipped
    assert len((out / GENERATIONS).read_text().splitlines()) == len(gens)
    assert [r["target_rate"] for r in again["rows"]] == [r["target_rate"] for r in rows]
    assert (out / GENERATIONS).stat().st_mtime_ns == mtime


def _cli_error(app, args) -> str:
    res = CliRunner().invoke(app, ["steer", *args])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "(fix: " in lines[0]
    return lines[0]


def test_unknown_finding_lists_the_valid_ones(app, phantom_dir, tmp_path):
    line = _cli_error(app, ["--data", str(phantom_dir), "--out", str(tmp_path / "o"), "--finding", "Effusion",
                            "--method", "prompt"])
    assert "'Effusion'" in line and "Pleural Effusion" in line and "Cardiomegaly" in line
    assert not (tmp_path / "o").exists()


def test_feature_out_of_range(app, phantom_dir, sae_dir, tmp_path):
    line = _cli_error(app, ["--data", str(phantom_dir), "--out", str(tmp_path / "o"), "--sae", str(sae_dir),
                            "--feature", "64"])
    assert "64" in line and "0..63" in line
    assert not (tmp_path / "o" / GENERATIONS).exists()


@pytest.mark.parametrize("kind", ["site", "width"])
def test_sae_from_another_site_or_width(demo, phantom_dir, tmp_path, kind):
    from radinterp.sae import save_sae

    sae = make_sae(site="lm.blocks.3.resid_post") if kind == "site" else make_sae(d_in=64, site="lm.blocks.15.resid_post")
    path = save_sae(sae, tmp_path / "sae")
    cfg = SteerConfig(data=str(phantom_dir), out=str(tmp_path / "o"), sae=str(path), features=[1],
                      site="lm.blocks.15.resid_post", n=2, progress=False)
    with pytest.raises(ValueError) as err:
        run_steering(cfg, adapter=demo)
    line = error_line(err.value, "")
    assert ("lm.blocks.3.resid_post" in line) if kind == "site" else ("64-wide" in line and "576" in line)
    assert "(fix: " in line and not (tmp_path / "o" / GENERATIONS).exists()


def test_non_finite_coefficient_generates_nothing(demo, phantom_dir, sae_dir, tmp_path):
    cfg = SteerConfig(data=str(phantom_dir), out=str(tmp_path / "o"), sae=str(sae_dir), features=[1],
                      coefs=[1.0, 1e38], n=2, progress=False)
    with pytest.raises(ValueError) as err:
        run_steering(cfg, adapter=demo)
    line = error_line(err.value, "")
    assert "non-finite" in line and "smaller --coef" in line
    assert not (tmp_path / "o" / GENERATIONS).exists() or not (tmp_path / "o" / GENERATIONS).read_text()
