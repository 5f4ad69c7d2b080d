"""Explainers, scorers and the ``autointerp`` command on a real phantom dataset, a real store
whose latent 0 fires on the studies carrying one planted finding, and a real saved SAE."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from autointerp.cli import register
from autointerp.config import AutointerpConfig
from autointerp.evidence import study_evidence
from autointerp.explainers import EXPLAINERS, ExplainContext, Explanation
from autointerp.records import RecordsConfig, build_records
from autointerp.sampling import SampleConfig, in_test, sample_latent
from autointerp.scorers import SCORERS, ScoreContext
from autointerp.scorers.planted import split_masks
from radinterp.data.phantoms import (
    PhantomConfig,
    finding_label,
    generate_phantoms,
    load_phantom_studies,
)
from radinterp.sae import SAEConfig, SparseAutoencoder, load_sae, save_sae
from radinterp.store import StoreWriter, make_manifest, open_store
from tests.autointerp.conftest import D, D_SAE, N_ROWS, SITE, planted_study

N = 80


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    root = tmp_path_factory.mktemp("ph") / "ph"
    generate_phantoms(PhantomConfig(n=N, seed=3, size=128), root)
    studies = load_phantom_studies(root)
    counts = {}
    for s in studies:
        for f in s.meta["findings"]:
            counts[f] = counts.get(f, 0) + 1
    finding = min(counts, key=lambda f: (abs(counts[f] - N * 0.3), f))  # common, not everywhere
    return root, studies, finding


@pytest.fixture(scope="module")
def store(phantoms, tmp_path_factory):
    """Latent 0 (image, patient's right) fires on the studies carrying ``finding``; latent 1
    on studies i % 4 == 1, whatever they carry."""
    root, studies, finding = phantoms
    manifest = make_manifest(model="synthetic", sites=[SITE], dtype="float32", d_model=D,
                             token_filter="all", data=str(root), data_kind="phantoms")
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("acts") / "acts"
    with StoreWriter(path, manifest) as w:
        for i, s in enumerate(studies):
            x, meta = planted_study(i, rng)
            x[:, 0] = torch.randn(N_ROWS) * 0.05
            if finding in s.meta["findings"]:
                x[[0, 2], 0] = 1.0 + i / N  # patches (0, 0) and (1, 0): the patient's right
            w.append([s.study_id], {SITE: x}, meta)
    return open_store(path)


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory):
    sae = SparseAutoencoder(SAEConfig(d_in=D, d_sae=D_SAE, k=2, site=SITE))
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(D)[:, :D_SAE])
        sae.W_dec.copy_(torch.eye(D)[:D_SAE])
        sae.threshold.fill_(0.5)
    path = tmp_path_factory.mktemp("sae") / "sae"
    save_sae(sae, path)
    return path


SAMPLE = SampleConfig(n_quantiles=4, per_quantile=4, n_random=12, n_hard=4, seed=1)


@pytest.fixture(scope="module")
def setup(phantoms, store, sae_dir):
    _, studies, finding = phantoms
    rec = build_records(store, load_sae(sae_dir), RecordsConfig(top_k=30, reservoir=30))
    evidence = {s.study_id: study_evidence(s) for s in studies}
    return rec, evidence, finding


def _explain(setup, latent):
    rec, evidence, _ = setup
    sample = sample_latent(rec, latent, SAMPLE)
    return sample, EXPLAINERS.get("enrichment")().explain(sample, ExplainContext(evidence, 2))


def test_enrichment_names_the_planted_label_and_not_for_an_unrelated_latent(setup):
    rec, evidence, finding = setup
    label = finding_label(finding)
    sample, expl = _explain(setup, 0)
    assert expl.ok and expl.text.startswith(label), expl.text
    top = expl.evidence["labels"][0]
    act = [e for e in sample.explain if e.activation > 0]
    assert top["active"] == len(act) == sum(label in evidence[e.study_id].labels for e in act)
    assert top["inactive"] == 0 and top["p_value"] < 1e-3
    assert "right" in expl.evidence["region"]  # image column 0: the patient's right
    assert _explain(setup, 0)[1].text == expl.text  # deterministic
    _, other = _explain(setup, 1)  # fires on i % 4 == 1, unrelated to the findings
    assert label not in other.text


def test_planted_scorer_selects_on_one_split_and_measures_on_the_other(setup):
    rec, evidence, finding = setup
    ctx = ScoreContext(rec, evidence, SAMPLE)
    scorer = SCORERS.get("planted")()
    scorer.prepare(ctx)
    sel, test = split_masks(ctx)
    assert not (sel & test).any() and (sel | test).all() and sel.any() and test.any()
    ids = np.array(rec.study_ids)
    assert all(in_test(s, SAMPLE.seed, SAMPLE.test_fraction) for s in ids[test])
    sample, expl = _explain(setup, 0)
    s = scorer.score(expl, sample, ctx)
    assert s.details["finding"] == finding and s.details["auroc_test"] == 1.0 and s.value == 1.0
    wrong = Explanation(0, "enrichment", "right upper zone")
    assert scorer.score(wrong, sample, ctx).value == 0.0
    _, other = _explain(setup, 1)
    assert scorer.score(other, sample_latent(rec, 1, SAMPLE), ctx).details["auroc_test"] < 0.9


@pytest.mark.slow  # loading MiniLM takes about 10 s on this CPU
def test_embedding_scorer_prefers_the_right_explanation(setup):
    rec, evidence, finding = setup
    ctx = ScoreContext(rec, evidence, SAMPLE)
    scorer = SCORERS.get("embedding")()
    scorer.prepare(ctx)
    sample, expl = _explain(setup, 0)
    right = scorer.score(expl, sample, ctx).value
    wrong = scorer.score(Explanation(0, "x", "a normal heart with clear lungs"), sample, ctx).value
    assert right > 0.7 and right > wrong + 0.2, (right, wrong)


def _cli(args):
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group, so "autointerp" is a subcommand
    register(app)
    return CliRunner().invoke(app, ["autointerp", *args])


def test_cli_writes_outputs_resumes_and_refuses_bad_input(store, sae_dir, tmp_path):
    out = tmp_path / "out"
    args = ["--sae", str(sae_dir), "--acts", str(store.root), "--out", str(out),
            "--features", "0-2", "--scorers", "planted", "--no-progress"]
    res = _cli(args)
    assert res.exit_code == 0, res.output
    expl = [json.loads(x) for x in (out / "explanations.jsonl").read_text().splitlines()]
    scores = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["latent"] for r in expl] == [0, 1, 2] and len(scores) == 3
    assert expl[0]["modality"]["image_tokens"] == 1.0 and expl[0]["frequency"] > 0
    assert all(r["baseline_latent"] == r["latent"] and r["baseline_explanation"] for r in expl)
    assert all(r["baseline_details"]["finding"] for r in scores)  # the random SAE, scored too
    summary = json.loads((out / "summary.json").read_text())
    assert summary["planted"]["n_matched"] >= 1 and summary["planted"]["named_rate"] == 1.0
    assert (out / "COMPLETE").exists() and json.loads((out / "cfg.json").read_text())["top"] is None
    lines = (out / "scores.jsonl").read_text().splitlines()
    (out / "scores.jsonl").write_text("\n".join(lines[:2]) + "\n")  # as if killed mid-run
    before = (out / "explanations.jsonl").read_text()
    assert _cli(args).exit_code == 0
    assert (out / "explanations.jsonl").read_text() == before  # nothing explained twice
    again = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    assert sorted(r["latent"] for r in again) == [0, 1, 2] and again[2] == scores[2]
    for bad, fix in ((["--features", "9-2"], "--features 0-99"),
                     (["--features", "0-99"], "indices below 6"),
                     (["--explainer", "nope"], "enrichment"),
                     (["--top", "3", "--features", "1"], "not both")):
        res = _cli([a for a in args if a not in ("--features", "0-2")] + bad)
        assert res.exit_code == 2 and fix in res.output, (bad, res.output)


@pytest.mark.parametrize("extra,fix", [
    (["--explainer", "vision"], "--explainer llm"),  # the local client takes text only
    (["--explainer", "llm", "--client", "openai"], "--model"),
    (["--scorers", "detection", "--client", "openai", "--model", "m", "--base-url",
      "https://api.example.com/v1"], "--allow-external-endpoint"),
    (["--base-url", "http://127.0.0.1:8000/v1"], "--client openai"),
    (["--explainer", "llm", "--client", "nope"], "local, openai"),
])
def test_llm_options_are_checked_before_anything_runs(extra, fix, tmp_path):
    res = _cli(["--sae", "x", "--acts", "y", "--out", str(tmp_path / "o"), *extra])
    assert res.exit_code == 2 and fix in res.output, res.output
    assert not (tmp_path / "o").exists()  # refused before any output


def test_defaults_keep_data_on_the_machine(tmp_path):
    cfg = AutointerpConfig("x", "y", str(tmp_path))
    assert cfg.explainers == ["enrichment"] and cfg.client == "local" and not cfg.needs_llm
    cfg = AutointerpConfig("x", "y", str(tmp_path), explainers=["llm"], client="openai",
                           model="m", base_url="https://api.example.com/v1",
                           allow_external_endpoint=True)
    assert cfg.needs_llm and cfg.client_options()["allow_external_endpoint"] is True


def test_enrichment_table_ranks_by_magnitude_and_keeps_the_longest_phrase():
    from autointerp.explainers.enrichment import enrichment_table

    rng = np.random.default_rng(0)
    values = np.sort(rng.uniform(1, 2, 40))[::-1].copy()  # (40,) a dense latent, strongest first
    items = [{"common"} if i % 2 else set() for i in range(40)]
    for i in range(4):  # a rare item on the 4 strongest studies only
        items[i] = items[i] | {"rare", "rare thing", "thing"}
    high = values > np.median(values)
    table = enrichment_table(items, values, high, "phrase")
    assert [e.item for e in table] == ["rare thing"]  # "rare", "thing": same counts, inside it
    assert table[0].active == 4 and table[0].inactive == 0
    assert enrichment_table(items, values, high, "phrase", alpha=1e-9) == []
