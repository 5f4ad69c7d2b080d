"""Capture with ``generate``: the model writes first, generated positions land as GENERATED rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from radinterp.capture import CaptureConfig, run_capture
from radinterp.data.sources import open_studies
from radinterp.generation import DecodeConfig, generate
from radinterp.hooks import capture
from radinterp.models.tokens import TokenKind
from radinterp.store import StoreError, open_store

SITE = "lm.blocks.2.resid_post"


def cfg(tmp_path, data, **kw) -> CaptureConfig:
    base = dict(model="tiny", data=str(data), out=str(tmp_path / "acts"), sites=[SITE], dtype="float32",
                batch_size=2, shard_mb=0.25, progress=False, generate=True, with_report=False,
                max_new_tokens=3)
    return CaptureConfig(**{**base, **kw})


def test_generated_rows_are_the_models_own_report(tmp_path, tiny_adapter, mimic_dir):
    res = run_capture(cfg(tmp_path, mimic_dir / "mimic.jsonl"), adapter=tiny_adapter)
    assert res.studies_captured == 4 and res.studies_skipped == 2  # one missing, one corrupt image
    store = open_store(tmp_path / "acts")
    meta = store.metadata()
    studies = [s for s in open_studies(mimic_dir / "mimic.jsonl") if s.study_id in ("m4", "m5")]  # one batch: m4 has a prior, m5 not
    out = generate(tiny_adapter, studies, DecodeConfig(max_new_tokens=3))  # as the runner did
    batch = tiny_adapter.collate(out.inputs(), padding_side="right")
    with capture(tiny_adapter, [SITE]) as ref, torch.no_grad():
        tiny_adapter.model(**tiny_adapter.to_device(batch))
    for i, study in enumerate(studies):
        rows = np.nonzero(meta["study_id"] == study.study_id)[0]
        n_prompt = len(out.prompts[i].input_ids)
        np.testing.assert_array_equal(meta["position"][rows], np.arange(n_prompt + 3))
        np.testing.assert_array_equal(meta["kind"][rows], out.layouts[i].kind)
        assert (meta["kind"][rows][n_prompt:] == TokenKind.GENERATED).all()
        assert not (meta["kind"][rows] == TokenKind.REPORT).any()  # the reference was not fed
        np.testing.assert_array_equal(meta["token_id"][rows], out.sequence_ids(i).numpy())
        torch.testing.assert_close(store.get_rows(SITE, rows), ref[SITE][i, : len(rows)], rtol=1e-5, atol=1e-5)


def test_generate_settings_are_checked(tmp_path, tiny_adapter, mimic_dir):
    with pytest.raises(ValueError, match="with_report=False"):
        cfg(tmp_path, mimic_dir / "mimic.jsonl", with_report=True)
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        cfg(tmp_path, mimic_dir / "mimic.jsonl", max_new_tokens=0)
    run_capture(cfg(tmp_path, mimic_dir / "mimic.jsonl", max_studies=1), adapter=tiny_adapter)
    with pytest.raises(StoreError, match="--overwrite"):  # never a mix of generated and teacher-forced
        run_capture(cfg(tmp_path, mimic_dir / "mimic.jsonl", max_studies=1, generate=False), adapter=tiny_adapter)
