"""Capture runner on the tiny MAIRA-2-shaped adapter: rows, metadata, filters, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radinterp.capture import CaptureConfig, run_capture
from radinterp.data.sources import open_studies
from radinterp.hooks import capture
from radinterp.models.tokens import TokenKind
from radinterp.store import StoreError, open_store
from tests.capture.conftest import REAL_CXR

SITES = ["lm.blocks.1.resid_post", "lm.blocks.2.resid_pre"]


def cfg(tmp_path, data, **kw) -> CaptureConfig:
    base = dict(model="tiny", data=str(data), out=str(tmp_path / "acts"), sites=SITES,
                dtype="float32", batch_size=4, shard_mb=0.25, progress=False)
    return CaptureConfig(**{**base, **kw})


@torch.no_grad()
def reference_rows(adapter, study, site) -> torch.Tensor:
    """The site's activations for one study, forwarded alone: (T, d_model)."""
    batch = adapter.collate([adapter.build_inputs(study, with_report=bool(study.report))])
    with capture(adapter, [site], stop_early=True) as acts:
        adapter.model(**adapter.to_device(batch))
    return acts[site][0]


def test_capture_all_real_cxr(tmp_path, tiny_adapter):
    res = run_capture(cfg(tmp_path, REAL_CXR, batch_size=8), adapter=tiny_adapter)
    assert res.studies_captured == 256 and res.studies_skipped == 0
    store = open_store(tmp_path / "acts")
    assert store.complete and len(store.shards) > 1 and store.d_model == tiny_adapter.d_model
    store.verify()
    meta = store.metadata()
    studies = list(open_studies(REAL_CXR))
    assert list(dict.fromkeys(meta["study_id"])) == [s.study_id for s in studies]
    n_img = tiny_adapter.n_image_tokens
    side = tiny_adapter.n_patches_side
    for sid in ("00000100_000", studies[-1].study_id):  # no report / with report
        m = meta["study_id"] == sid
        assert (meta["kind"][m] == TokenKind.IMAGE).sum() == n_img
        img = m & (meta["kind"] == TokenKind.IMAGE)
        assert set(meta["patch_row"][img]) == set(range(side)) == set(meta["patch_col"][img])
        assert (meta["image_slot"][img] == 0).all()
        np.testing.assert_array_equal(meta["position"][m], np.arange(m.sum()))
    assert (meta["kind"] == TokenKind.REPORT).any()  # the 8 studies with text are teacher-forced
    # rows equal a forward of the study alone (batched with right padding: same up to fp error)
    for study in (studies[3], studies[-1]):
        rows = np.nonzero(meta["study_id"] == study.study_id)[0]
        for site in SITES:
            ref = reference_rows(tiny_adapter, study, site)
            torch.testing.assert_close(store.get_rows(site, rows), ref, rtol=1e-4, atol=1e-4)
        tokens = tiny_adapter.build_inputs(study, with_report=bool(study.report)).input_ids
        np.testing.assert_array_equal(meta["token_id"][rows], tokens.numpy())


def test_token_filter_keeps_only_its_positions(tmp_path, tiny_adapter, mimic_dir):
    data = mimic_dir / "mimic.jsonl"
    run_capture(cfg(tmp_path / "all", data), adapter=tiny_adapter)
    run_capture(cfg(tmp_path / "sae", data, token_filter="maira2_sae"), adapter=tiny_adapter)
    full, sae = open_store(tmp_path / "all" / "acts"), open_store(tmp_path / "sae" / "acts")
    assert sae.manifest["token_filter"] == "maira2_sae"
    m_all, m_sae = full.metadata(), sae.metadata()
    assert set(np.unique(m_sae["kind"])) == {TokenKind.PROMPT_CONTENT, TokenKind.REPORT}
    keep = np.isin(m_all["kind"], [TokenKind.PROMPT_CONTENT, TokenKind.REPORT])
    assert sae.num_tokens() == keep.sum()
    np.testing.assert_array_equal(m_sae["position"], m_all["position"][keep])
    torch.testing.assert_close(sae.get_rows(SITES[0], np.arange(sae.num_tokens())),
                               full.get_rows(SITES[0], np.nonzero(keep)[0]))


def test_missing_and_corrupt_images_are_skipped(tmp_path, tiny_adapter, mimic_dir, caplog):
    res = run_capture(cfg(tmp_path, mimic_dir / "mimic.jsonl"), adapter=tiny_adapter)
    assert res.studies_skipped == 2 and res.studies_captured == 4
    store = open_store(tmp_path / "acts")
    skipped = store.skipped()
    assert set(skipped) == {"m1", "m3"}
    assert "does_not_exist.png" in skipped["m1"] and "corrupt.png" in skipped["m3"]
    assert store.studies() == ["m0", "m2", "m4", "m5"]
    assert "skipped 2 studies" in caplog.text
    meta = store.metadata()
    m4 = meta["study_id"] == "m4"  # frontal + lateral + prior: three image slots
    assert set(meta["image_slot"][m4 & (meta["kind"] == TokenKind.IMAGE)]) == {0, 1, 2}
    caplog.set_level("INFO", logger="radinterp.capture.runner")
    again = run_capture(cfg(tmp_path, mimic_dir / "mimic.jsonl"))  # no adapter: not loaded
    assert again.studies_already_done == 6 and again.studies_captured == 0
    assert "nothing to do" in caplog.text


def test_bad_sites_and_mismatched_store(tmp_path, tiny_adapter, mimic_dir):
    data = mimic_dir / "mimic.jsonl"
    with pytest.raises(ValueError, match="layer index in 0..3"):
        run_capture(cfg(tmp_path, data, sites=["lm.blocks.9.resid_post"]), adapter=tiny_adapter)
    with pytest.raises(ValueError, match="unknown site name"):
        run_capture(cfg(tmp_path, data, sites=["lm.layer9"]), adapter=tiny_adapter)
    with pytest.raises(ValueError, match="language-model position"):
        run_capture(cfg(tmp_path, data, sites=["vision.blocks.0"]), adapter=tiny_adapter)
    with pytest.raises(ValueError, match="unknown token filter"):
        cfg(tmp_path, data, token_filter="nouns")
    run_capture(cfg(tmp_path, data, max_studies=2), adapter=tiny_adapter)
    with pytest.raises(StoreError, match="different settings.*sites"):
        run_capture(cfg(tmp_path, data, sites=["lm.blocks.3.resid_post"]), adapter=tiny_adapter)
    with pytest.raises(StoreError, match="different settings.*model"):
        run_capture(cfg(tmp_path, data, model="other"), adapter=tiny_adapter)
    assert open_store(tmp_path / "acts").studies() == ["m0"]  # m1 skipped; store untouched
    res = run_capture(cfg(tmp_path, data, max_studies=4), adapter=tiny_adapter)
    assert res.studies_already_done == 2 and res.studies_captured == 1  # m2 new, m3 corrupt


def test_capture_phantoms_report_tokens(tmp_path, tiny_adapter):
    from radinterp.data.phantoms import PhantomConfig, generate_phantoms

    root = generate_phantoms(PhantomConfig(n=4, seed=1, size=64), tmp_path / "ph", progress=False)
    run_capture(cfg(tmp_path, root, token_filter="report", batch_size=3), adapter=tiny_adapter)
    store = open_store(tmp_path / "acts")
    meta = store.metadata()
    assert set(np.unique(meta["kind"])) == {TokenKind.REPORT}
    for study in open_studies(root):
        layout = tiny_adapter.build_inputs(study, with_report=True).layout
        m = meta["study_id"] == study.study_id
        np.testing.assert_array_equal(meta["position"][m], np.nonzero(layout.kind == TokenKind.REPORT)[0])
