"""LLM explainers and judges on the real phantom store of ``test_explain_score`` (latent 0
fires on the right-side patches of the studies carrying one planted finding): what they show
the model, and the whole pipeline against a real ``transformers serve`` of SmolLM2 behind the
fault-injecting proxy (slow)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import secrets

import numpy as np
import pytest
from PIL import Image

from autointerp.config import AutointerpConfig
from autointerp.explainers import EXPLAINERS, ExplainContext
from autointerp.explainers.vision import check_accepts_images, heatmap_data_url
from autointerp.pipeline import run_autointerp
from autointerp.render import ExampleRenderer
from autointerp.sampling import sample_latent
from autointerp.scorers import SCORERS, ScoreContext
from radinterp.data.phantoms import finding_label
from tests.autointerp.conftest import FaultProxy
from tests.autointerp.test_explain_score import (SAMPLE, phantoms, sae_dir, setup,  # noqa: F401
                                                 store)


@pytest.fixture(scope="module")
def renderer(phantoms):  # noqa: F811
    _, studies, _ = phantoms
    return ExampleRenderer({s.study_id: s for s in studies}, n_side=2)  # no tokenizer


def test_llm_prompts_show_marked_examples_and_the_enrichment_table(setup, renderer):  # noqa: F811
    rec, evidence, finding = setup
    sample = sample_latent(rec, 0, SAMPLE)
    ctx = ExplainContext(evidence, 2, renderer)
    plain = EXPLAINERS.get("llm")(n_examples=4).messages(sample, ctx)
    user = plain[1]["content"]
    assert "[EXPLANATION]:" in plain[0]["content"] and user.count("Example ") == 4
    assert user.count("fires on the right") == 4  # image column 0: the patient's right
    act = sorted((ex for ex in sample.explain if ex.activation > 0), key=lambda e: -e.activation)
    assert f"activation {act[0].activation:.2f}" in user  # strongest first, with its value
    assert renderer.report(act[0].study_id)[:40] in user
    assert "Counts over" not in user
    rich = EXPLAINERS.get("llm-evidence")(n_examples=4).messages(sample, ctx)[1]["content"]
    table = rich.split("Counts over the same explanation set")[1]
    assert table.lstrip(": \n").startswith("items over-represented")
    assert f"- {finding_label(finding)} (" in table  # the planted label, with its counts
    assert rich.startswith(user.split("\nWhat does")[0])


def test_judges_pick_balanced_items(setup, renderer):  # noqa: F811
    rec, evidence, _ = setup
    sample = sample_latent(rec, 0, SAMPLE)
    ctx = ScoreContext(rec, evidence, SAMPLE, renderer)
    rng = np.random.default_rng(0)
    items, skipped = SCORERS.get("detection")(n_per_class=3).items(sample, ctx, rng)
    assert [t for _, t in items] == [True] * 3 + [False] * 3 and skipped == 0
    assert all(text.startswith("Report: ") and "<<" not in text for text, _ in items)
    items, _ = SCORERS.get("fuzzing")(n_per_class=3).items(sample, ctx, rng)
    assert [t for _, t in items] == [True, False] * 3
    region = [text.split("fires on the ")[1].split(" (")[0] for text, _ in items]
    assert all(r.startswith("right") for r, (_, t) in zip(region, items) if t)
    true_regions = {renderer.region(ex) for ex in sample.test if ex.activation > 0}
    assert not any(r in true_regions for r, (_, t) in zip(region, items) if not t)


def test_vision_sends_heatmaps_and_refuses_text_only_clients(setup, phantoms, tiny_adapter):  # noqa: F811
    from autointerp.clients import LocalClient

    rec, evidence, _ = setup
    _, studies, _ = phantoms
    sample = sample_latent(rec, 0, SAMPLE)
    ex = max(sample.explain, key=lambda e: e.activation)
    url = heatmap_data_url(ex, next(s for s in studies if s.study_id == ex.study_id), tiny_adapter)
    img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert url.startswith("data:image/png;base64,") and img.format == "PNG"
    r = ExampleRenderer({s.study_id: s for s in studies}, 2, tiny_adapter)
    msgs = EXPLAINERS.get("vision")(n_examples=3, n_images=2).messages(
        sample, ExplainContext(evidence, 2, r))
    kinds = [p["type"] for p in msgs[1]["content"]]
    assert kinds.count("image_url") == 2 and kinds.count("text") == 4
    with pytest.raises(ValueError, match="--explainer llm"):
        check_accepts_images(LocalClient())


def _rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def _same_rows(a: dict, b: dict) -> bool:
    """Same rows, up to order and the reply's timing / cache flag (in ``evidence``)."""
    def norm(text):
        rows = [json.loads(x) for x in text.splitlines()]
        for r in rows:
            for k in ("seconds", "cached"):
                (r.get("evidence") or {}).pop(k, None)
        return sorted(json.dumps(r, sort_keys=True) for r in rows)

    return all(norm(a[p]) == norm(b[p]) for p in a)


@pytest.mark.slow
def test_llm_pipeline_against_a_real_server(tf_server, store, sae_dir, tmp_path, monkeypatch):  # noqa: F811
    """llm explainer + detection judge, random baseline beside, inside a running event loop
    (as in Jupyter), through 429 / 500 / drop / bad JSON: nothing lost, nothing scored twice,
    a rerun (also after losing the rows) sends no request, and the key is nowhere in OUT."""
    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv("RADINTERP_TEST_LLM_KEY", key)
    out = tmp_path / "out"

    def cfg(url):
        return AutointerpConfig(
            str(sae_dir), str(store.root), str(out), features="0",
            explainers=["enrichment", "llm"], scorers=["detection"], client="openai",
            base_url=url, model=tf_server["model"], key_env="RADINTERP_TEST_LLM_KEY",
            concurrency=4, max_tokens=24, progress=False)

    faults = {1: "429", 2: "500", 3: "drop", 4: "badjson"}
    with FaultProxy(tf_server["url"], faults) as proxy:
        async def notebook_cell():
            return run_autointerp(cfg(proxy.url))

        summary = asyncio.run(notebook_cell())
        assert proxy.auth and set(proxy.auth) == {f"Bearer {key}"}
        sent = proxy.n_received
    llm = summary["llm"]
    assert llm["retries"] == len(faults) and sent == llm["requests"] + len(faults)
    expl, scores = _rows(out / "explanations.jsonl"), _rows(out / "scores.jsonl")
    assert sorted((r["latent"], r["explainer"]) for r in expl) == [(0, "enrichment"), (0, "llm")]
    assert sorted((r["latent"], r["explainer"], r["scorer"]) for r in scores) == [
        (0, "enrichment", "detection"), (0, "llm", "detection")]
    row = next(r for r in expl if r["explainer"] == "llm")
    assert row["evidence"]["reply"] and (row["ok"] == bool(row["explanation"]))
    assert row["ok"] or row["error"].startswith("unparsable reply")
    judged = next(r for r in scores if r["explainer"] == "enrichment")
    d = judged["details"]  # the judge ran on both SAEs' enrichment explanations
    assert d["n_parsed"] + d["n_unparsable"] == d["n_items"] > 0 and judged["baseline_details"]
    assert (judged["score"] is None) == (d["n_true"] in (0, d["n_parsed"]))
    before = {p: p.read_text() for p in (out / "explanations.jsonl", out / "scores.jsonl")}
    with FaultProxy(tf_server["url"]) as proxy:  # rerun: every row is there
        again = run_autointerp(cfg(proxy.url))
        assert proxy.n_received == 0 and again["llm"]["requests"] == 0
    (out / "scores.jsonl").write_text("")  # as if killed before any score row was written
    (out / "explanations.jsonl").write_text("")
    with FaultProxy(tf_server["url"]) as proxy:  # the reply cache answers everything
        again = run_autointerp(cfg(proxy.url))
        assert proxy.n_received == 0 and again["llm"]["cached"] == llm["requests"] + llm["cached"]
    assert _same_rows(before, {p: p.read_text() for p in before})
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 4 and not any(key in p.read_text(errors="replace") for p in files)
