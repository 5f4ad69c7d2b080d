"""StoreWriter: round trip, deterministic shards, resume, and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from radinterp.store import StoreError, StoreWriter, make_manifest, open_store
from tests.store.conftest import D, SITES, batch_rows, study_rows


def write(root: Path, manifest: dict, ids: list[int], group: int = 3, **kw) -> None:
    with StoreWriter(root, manifest, **kw) as w:
        for k in range(0, len(ids), group):
            w.append(*batch_rows(ids[k:k + group]))


def fingerprint(root: Path) -> tuple:
    prog = sorted((root / "progress").glob("*.json"))
    return (
        (root / "manifest.json").read_text(),
        [p.read_text() for p in prog],
        sorted(p.name for p in (root / "shards").iterdir()),
        sorted(p.name for p in (root / "progress").iterdir()),
        sorted(p.name for p in root.iterdir()),
    )


def test_round_trip(tmp_path, manifest):
    write(tmp_path, manifest, list(range(20)))
    store = open_store(tmp_path)
    assert store.complete and len(store.shards) > 2
    expected = [study_rows(i) for i in range(20)]
    n = sum(len(m["kind"]) for _, m in expected)
    assert store.num_tokens() == n == store.num_tokens(SITES[0])
    assert store.num_tokens(token_kinds=["image"]) == 2 * 20
    store.verify()
    for j, site in enumerate(SITES):
        got = torch.cat([a for a, _ in store.iter_chunks(site, chunk_rows=7)])
        torch.testing.assert_close(got, torch.cat([a[site] for a, _ in expected]))
    meta = store.metadata()
    assert list(meta["study_id"][:5]) == ["s0000"] * 5
    assert meta["study_id"][-1] == "s0019"
    np.testing.assert_array_equal(meta["position"], np.concatenate([m["position"] for _, m in expected]))
    rows = np.array([0, 17, n - 1, 33])
    sub = store.metadata(rows)
    np.testing.assert_array_equal(sub["token_id"], meta["token_id"][rows])
    assert list(sub["study_id"]) == list(meta["study_id"][rows])
    torch.testing.assert_close(store.get_rows(SITES[1], rows), got[rows])
    first = store.shards[0]
    torch.testing.assert_close(store.shard_acts(0, SITES[1]), got[: first.rows])
    assert store.studies() == [f"s{i:04d}" for i in range(20)]


def test_shards_do_not_depend_on_batching_or_async(tmp_path, manifest):
    write(tmp_path / "a", manifest, list(range(15)), group=1)
    write(tmp_path / "b", manifest, list(range(15)), group=6, async_write=False)
    assert fingerprint(tmp_path / "a") == fingerprint(tmp_path / "b")


def test_bfloat16_round_trip(tmp_path):
    m = make_manifest(model="m", sites=SITES, dtype="bfloat16", d_model=D, token_filter="all")
    write(tmp_path, m, [0, 1])
    store = open_store(tmp_path)
    got = torch.cat([a for a, _ in store.iter_chunks(SITES[0])])
    ref = torch.cat([study_rows(i)[0][SITES[0]] for i in (0, 1)]).bfloat16().float()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=0)


def test_resume_after_abort_matches_uninterrupted(tmp_path, manifest):
    write(tmp_path / "full", manifest, list(range(30)))
    root = tmp_path / "resumed"
    w = StoreWriter(root, manifest)
    for i in range(12):
        w.append(*batch_rows([i]))
    w.abort()  # like a crash: the uncommitted buffer is lost
    # a shard renamed into place but never recorded (crash between rename and index update)
    (root / "shards" / "r00000-s000099.safetensors").write_bytes(b"orphan")
    (root / "shards" / ".r00000-s000100.safetensors.tmp").write_bytes(b"half")
    # kill -9 inside write_json_atomic leaves its temp file behind
    (root / "progress" / ".rank00000.json.k9x2ab.tmp").write_text('{"half":')
    (root / ".manifest.json.q7w1zz.tmp").write_text("{")
    assert not open_store(root).complete
    w = StoreWriter(root, manifest)
    todo = [i for i in range(30) if not w.is_done(f"s{i:04d}")]
    assert 0 < todo[0] < 12  # some written, the buffered tail lost
    for k in range(0, len(todo), 4):
        w.append(*batch_rows(todo[k:k + 4]))
    w.close()
    assert fingerprint(root) == fingerprint(tmp_path / "full")


def test_skips_are_recorded_and_counted(tmp_path, manifest):
    with StoreWriter(tmp_path, manifest) as w:
        w.append(*batch_rows([0]))
        w.mark_skipped("bad1", "missing image /x/1.png")
        w.append(*batch_rows([1]))
        w.mark_skipped("bad2", "corrupt image /x/2.png")
    store = open_store(tmp_path)
    assert store.skipped() == {"bad1": "missing image /x/1.png", "bad2": "corrupt image /x/2.png"}
    prog = json.loads((tmp_path / "progress" / "rank00000.json").read_text())
    assert prog["num_skipped"] == 2
    w = StoreWriter(tmp_path, manifest)
    assert w.is_done("bad1") and w.is_done("s0001")
    w.abort()


@pytest.mark.parametrize("field,value", [("model", "other"), ("sites", ["lm.blocks.9.resid_post"]),
                                         ("d_model", 16), ("token_filter", "image")])
def test_appending_with_other_settings_fails(tmp_path, manifest, field, value):
    write(tmp_path, manifest, [0])
    with pytest.raises(StoreError, match=f"different settings.*{field}"):
        StoreWriter(tmp_path, {**manifest, field: value})
    assert open_store(tmp_path).num_tokens() == 5


def test_bad_appends(tmp_path, manifest):
    w = StoreWriter(tmp_path, manifest)
    ids, acts, meta = batch_rows([0])
    with pytest.raises(StoreError, match="sites"):
        w.append(ids, {SITES[0]: acts[SITES[0]]}, meta)
    with pytest.raises(StoreError, match="shape"):
        w.append(ids, {s: a[:, :3] for s, a in acts.items()}, meta)
    w.append(ids, acts, meta)
    with pytest.raises(StoreError, match="unique"):
        w.append(ids, acts, meta)
    w.close()


def test_open_non_store_and_missing_site(tmp_path, manifest):
    with pytest.raises(StoreError, match="not an activation store"):
        open_store(tmp_path)
    write(tmp_path, manifest, [0])
    with pytest.raises(StoreError, match="not in store"):
        open_store(tmp_path).num_tokens("lm.blocks.7.resid_post")


def test_verify_detects_corruption(tmp_path, manifest):
    write(tmp_path, manifest, list(range(6)))
    store = open_store(tmp_path)
    shard = tmp_path / store.shards[1].file
    data = bytearray(shard.read_bytes())
    data[-3] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="checksum mismatch.*s000001"):
        open_store(tmp_path).verify()


_WRITE_SCRIPT = textwrap.dedent("""
    import resource, signal, sys
    from tests.store.conftest import batch_rows
    from radinterp.store import StoreWriter, make_manifest, StoreError
    from tests.store.conftest import SITES, D
    limit = int(sys.argv[2])
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    m = make_manifest(model="synthetic", sites=SITES, dtype="float32", d_model=D,
                      token_filter="all", shard_bytes=int(sys.argv[3]))
    try:
        with StoreWriter(sys.argv[1], m) as w:
            for i in range(40):
                if not w.is_done(f"s{i:04d}"):
                    w.append(*batch_rows([i]))
    except StoreError as exc:
        print("STORE-ERROR:", exc)
        sys.exit(3)
""")


def run_writer(root: Path, limit: int, shard_bytes: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run([sys.executable, "-c", _WRITE_SCRIPT, str(root), str(limit),
                           str(shard_bytes)], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).parents[2])


def test_write_error_keeps_store_consistent(tmp_path):
    """A real EFBIG from the OS (file-size limit) mid-capture: clear error, readable prefix."""
    full, limited = tmp_path / "full", tmp_path / "limited"
    assert run_writer(full, 0, 6000).returncode == 0
    res = run_writer(limited, 5000, 6000)  # shards are ~6-7 kB: the first one cannot be written
    assert res.returncode == 3, res.stderr
    assert "could not write shard" in res.stdout and "rerun to resume" in res.stdout
    store = open_store(limited)
    assert store.num_tokens() == 0 and not store.complete
    assert run_writer(limited, 0, 6000).returncode == 0  # resume once the disk has room
    assert fingerprint(limited) == fingerprint(full)
    open_store(limited).verify()


def test_kind_values_match_token_kinds():
    from radinterp.models.tokens import TokenKind
    from radinterp.store.writer import _N_KINDS
    from tests.store.conftest import BOILERPLATE, IMAGE, REPORT

    assert _N_KINDS == len(TokenKind)
    assert (IMAGE, BOILERPLATE, REPORT) == (TokenKind.IMAGE, TokenKind.BOILERPLATE, TokenKind.REPORT)
