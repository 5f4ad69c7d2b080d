"""Per-study access: study rows / acts equal the rows a full read selects, one read per shard,
and reopening the studies a store was captured from."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

import radinterp.store.reader as reader_mod
from radinterp.store import StoreError, StoreWriter, make_manifest, open_store
from radinterp.store.format import META_COLUMNS, ShardFile, acts_key
from tests.shared_data import REAL_CXR
from tests.store.conftest import D, SITES, batch_rows

IMAGE, REPORT = 0, 3


def _empty_study(sid: str) -> tuple[list[str], dict, dict]:
    return ([sid], {s: torch.empty(0, D) for s in SITES},
            {c: np.empty(0, dt) for c, dt in META_COLUMNS.items()})


@pytest.fixture
def store(tmp_path, manifest):
    with StoreWriter(tmp_path, manifest) as w:
        for k in range(0, 40, 4):
            w.append(*batch_rows(list(range(k, k + 4))))
            if k == 8:
                w.append(*_empty_study("no-rows"))  # captured, but no position kept
                w.mark_skipped("bad", "missing frontal image file /x/bad.png")
    return open_store(tmp_path)


class CountingShardFile(ShardFile):
    """The real ShardFile, counting opens and reads per (shard, tensor)."""

    opens: Counter = Counter()
    reads: Counter = Counter()

    def __init__(self, path):
        super().__init__(path)
        CountingShardFile.opens[Path(path).name] += 1

    def read_numpy(self, name, start=0, stop=None, out=None):
        CountingShardFile.reads[(self.path.name, name)] += 1
        return super().read_numpy(name, start, stop, out)


def test_study_reads_equal_the_rows_of_a_full_read(store):
    meta_all = store.metadata()
    assert "no-rows" in store.studies() and store.study_index()["no-rows"] is None
    assert len(store.shards) > 3
    for sid in store.studies():
        rows = np.nonzero(meta_all["study_id"] == sid)[0]
        m = store.study_rows(sid)
        for c in [*META_COLUMNS, "study_id", "row"]:
            np.testing.assert_array_equal(m[c], meta_all[c][rows])
        for site in SITES:
            assert torch.equal(store.study_acts(site, sid), store.get_rows(site, rows))
        report = rows[meta_all["kind"][rows] == REPORT]
        got = store.study_acts(SITES[1], sid, token_kinds=["report"])
        assert torch.equal(got, store.get_rows(SITES[1], report))
        np.testing.assert_array_equal(store.study_rows(sid, ["report"])["row"], report)
    assert store.study_acts(SITES[0], "no-rows").shape == (0, D)


def test_iter_studies_reads_each_shard_once(store, monkeypatch):
    ref = {sid: (store.study_rows(sid), store.study_acts(SITES[0], sid))
           for sid in store.studies() if sid != "no-rows"}
    monkeypatch.setattr(reader_mod, "ShardFile", CountingShardFile)
    fresh = open_store(store.root)
    CountingShardFile.opens.clear(), CountingShardFile.reads.clear()
    fresh.study_index()  # built once: the study_index column of each shard
    names = [Path(s.file).name for s in fresh.shards]
    assert set(CountingShardFile.reads) == {(n, "study_index") for n in names}
    assert set(CountingShardFile.reads.values()) == {1}
    fresh.study_index()
    assert sum(CountingShardFile.reads.values()) == len(names)  # cached

    for max_rows, want_reads in ((None, 1), (12, None)):
        CountingShardFile.opens.clear(), CountingShardFile.reads.clear()
        got = list(fresh.iter_studies(SITES[0], max_rows=max_rows))
        assert [sid for sid, _, _ in got] == list(ref)  # row order, the empty study left out
        for sid, meta, acts in got:
            assert torch.equal(acts, ref[sid][1])
            assert all(np.array_equal(meta[c], ref[sid][0][c]) for c in ref[sid][0])
        acts_reads = [CountingShardFile.reads[(n, acts_key(SITES[0]))] for n in names]
        if want_reads is not None:  # the whole store: one read per shard and column
            assert acts_reads == [1] * len(names)
            assert all(CountingShardFile.reads[(n, c)] == 1 for n in names for c in META_COLUMNS)
        else:  # capped reads: cut at study boundaries, still far fewer than one per study
            assert all(r >= 1 for r in acts_reads) and sum(acts_reads) > len(names)
            assert sum(acts_reads) < len(ref)
        assert all(CountingShardFile.reads[(n, acts_key(SITES[1]))] == 0 for n in names)
        assert max(CountingShardFile.opens.values(), default=0) <= 1
    full = torch.cat([a for a, _ in fresh.iter_chunks(SITES[0])])
    assert torch.equal(torch.cat([a for _, _, a in got]), full)


def test_iter_studies_subset_and_kinds(store):
    pick = ["s0030", "s0003", "s0004", "s0017"]
    got = list(store.iter_studies(SITES[1], pick, token_kinds=["image"]))
    assert [sid for sid, _, _ in got] == ["s0003", "s0004", "s0017", "s0030"]  # row order
    for sid, meta, acts in got:
        assert (meta["kind"] == IMAGE).all() and (meta["study_id"] == sid).all()
        assert torch.equal(acts, store.get_rows(SITES[1], meta["row"]))
    with pytest.raises(StoreError, match="'bad' was skipped by the capture \\(missing frontal"):
        list(store.iter_studies(SITES[0], ["s0001", "bad"]))
    with pytest.raises(StoreError, match="'nope' was not captured"):
        store.study_rows("nope")
    with pytest.raises(StoreError, match="not in store"):
        store.study_acts("lm.blocks.9.resid_post", "s0001")


def _mimic(root: Path, ids: list[str]) -> Path:
    root.mkdir(parents=True)
    rows = [{"study_id": sid, "frontal": f"img/{sid}.png", "report": f"Report {sid}."}
            for sid in ids]
    (root / "studies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root / "studies.jsonl"


def test_open_studies_from_the_manifest_and_after_a_move(tmp_path):
    ids = [f"s{i:04d}" for i in range(6)]
    data = _mimic(tmp_path / "data", ids + ["not-captured"])
    manifest = make_manifest(model="synthetic", sites=SITES, dtype="float32", d_model=D,
                             token_filter="all", data=str(data), data_kind="mimic_jsonl")
    with StoreWriter(tmp_path / "acts", manifest) as w:
        w.append(*batch_rows(list(range(6))))
    store = open_store(tmp_path / "acts")
    studies = store.open_studies()
    assert [s.study_id for s in studies] == store.studies() == ids
    assert studies[2].report == "Report s0002."
    assert studies[2].frontal == str(data.parent / "img" / "s0002.png")
    picked = store.open_studies(study_ids=["s0004", "s0001"])
    assert [s.study_id for s in picked] == ["s0004", "s0001"]
    shutil.move(tmp_path / "data", tmp_path / "moved")
    with pytest.raises(StoreError, match=r"does not exist .*store.open_studies\(data=NEW_PATH\)"):
        store.open_studies()
    moved = store.open_studies(data=tmp_path / "moved" / "studies.jsonl")
    assert [s.study_id for s in moved] == ids
    with pytest.raises(StoreError, match="not in .*pass data="):
        store.open_studies(data=_mimic(tmp_path / "other", ids[:2]))


def test_capture_records_its_data_and_reopens_it(tmp_path, tiny_adapter, monkeypatch):
    from radinterp.capture import CaptureConfig, run_capture

    monkeypatch.chdir(REAL_CXR.parent)
    cfg = CaptureConfig(model="tiny", data="real-cxr", out=str(tmp_path / "acts"),
                        sites=SITES[:1], dtype="float32", max_studies=3, progress=False)
    run_capture(cfg, adapter=tiny_adapter)
    store = open_store(tmp_path / "acts")
    assert store.manifest["data"] == {"path": str(REAL_CXR), "kind": "image_folder"}
    studies = store.open_studies()
    assert [s.study_id for s in studies] == store.studies() and len(studies) == 3
    side = tiny_adapter.n_patches_side
    for sid, meta, acts in store.iter_studies(SITES[0], token_kinds=["image"]):
        assert acts.shape == (side * side, tiny_adapter.d_model)
        assert sorted(zip(meta["patch_row"], meta["patch_col"])) == [
            (r, c) for r in range(side) for c in range(side)]
