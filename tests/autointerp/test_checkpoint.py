"""The records pass checkpoints its state and a killed pass resumes to the very same records."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autointerp.records import LatentRecords, RecordsConfig, build_records


class Killed(RuntimeError):
    """Raised from the checkpoint callback: the pass dies right after a checkpoint."""


def _assert_same(a: LatentRecords, b: LatentRecords) -> None:
    assert a.study_ids == b.study_ids and a.n_tokens == b.n_tokens
    for name in ("tokens_by_kind", "fire_by_kind", "study_modality", "hist", "hist_edges"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert torch.equal(a.study_max, b.study_max)
    for kept in ("top", "reservoir"):
        for xs, ys in zip(getattr(a, kept), getattr(b, kept), strict=True):
            assert [x.study_id for x in xs] == [y.study_id for y in ys]
            for x, y in zip(xs, ys):
                assert x.activation == y.activation
                for f in ("positions", "values", "kinds", "token_ids", "image_slot",
                          "patch_row", "patch_col"):
                    np.testing.assert_array_equal(getattr(x, f), getattr(y, f))


def test_a_killed_pass_resumes_to_identical_records(planted_store, planted_sae, tmp_path):
    cfg = RecordsConfig(top_k=5, reservoir=4, batch_rows=25, checkpoint_every=2)
    n_shards = len(planted_store.shards)
    assert n_shards >= 6
    whole = build_records(planted_store, planted_sae, cfg, checkpoint=tmp_path / "whole")
    plain = build_records(planted_store, planted_sae, cfg)  # no checkpoints: the same records
    _assert_same(whole, plain)

    seen: list[int] = []

    def kill_after_4(done: int) -> None:
        seen.append(done)
        if done >= 4:
            raise Killed(done)

    with pytest.raises(Killed):
        build_records(planted_store, planted_sae, cfg, checkpoint=tmp_path / "ck",
                      on_checkpoint=kill_after_4)
    state = json.loads((tmp_path / "ck" / "state.json").read_text())
    assert seen == [2, 4] and state["shards_done"] == 4
    assert 0 < len(state["study_ids"]) < len(whole.study_ids)

    resumed_at: list[int] = []
    resumed = build_records(planted_store, planted_sae, cfg, checkpoint=tmp_path / "ck",
                            on_checkpoint=resumed_at.append)
    assert resumed_at[0] == 6 and resumed_at[-1] == n_shards  # not one shard read twice
    _assert_same(resumed, whole)

    # a finished checkpoint answers a rerun without a pass; another config starts over
    again: list[int] = []
    _assert_same(build_records(planted_store, planted_sae, cfg, checkpoint=tmp_path / "ck",
                               on_checkpoint=again.append), whole)
    assert again == []
    other = RecordsConfig(top_k=3, reservoir=4, batch_rows=25, checkpoint_every=2)
    fresh: list[int] = []
    rec = build_records(planted_store, planted_sae, other, checkpoint=tmp_path / "ck",
                        on_checkpoint=fresh.append)
    assert fresh[0] == 2 and all(len(t) <= 3 for t in rec.top)
