"""Two CPU processes under torchrun (gloo): disjoint study slices, one store, same rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from radinterp.capture import CaptureConfig, run_capture
from radinterp.store import open_store
from tests.capture.conftest import REAL_CXR

ROOT = Path(__file__).parents[2]
SITE = "lm.blocks.2.resid_post"


def test_two_rank_capture_matches_single_process(tmp_path):
    out2 = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "radinterp.capture", "--model", "tiny", "--data", str(REAL_CXR), "--out", str(out2),
           "--site", SITE, "--max-studies", "21", "--batch-size", "2", "--image-size", "56",
           "--dtype", "float32", "--shard-mb", "0.05", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "rank 0/2" in res.stdout and "rank 1/2" in res.stdout

    run_capture(CaptureConfig(model="tiny", data=str(REAL_CXR), out=str(tmp_path / "one"),
                              sites=[SITE], max_studies=21, batch_size=2, image_size=56,
                              dtype="float32", shard_mb=0.05, progress=False))
    one, two = open_store(tmp_path / "one"), open_store(out2)
    assert two.manifest["world_size"] == 2 and two.complete
    assert {s.rank for s in two.shards} == {0, 1}
    by_rank = [[sid for e in p.entries for sid in e.studies] for p in two.progress]
    ids = one.studies()
    assert by_rank == [ids[0::2], ids[1::2]]  # disjoint strided slices
    assert two.num_tokens() == one.num_tokens()
    m1, m2 = one.metadata(), two.metadata()
    for sid in (ids[0], ids[1], ids[20]):
        r1, r2 = np.nonzero(m1["study_id"] == sid)[0], np.nonzero(m2["study_id"] == sid)[0]
        np.testing.assert_array_equal(m1["token_id"][r1], m2["token_id"][r2])
        torch.testing.assert_close(one.get_rows(SITE, r1), two.get_rows(SITE, r2),
                                   rtol=1e-4, atol=1e-4)
    # the training reader splits the 2-rank store across 2 trainer ranks, disjointly (image
    # rows: the shared prompt prefix gives equal activations in every study)
    parts = [torch.cat(list(two.reader(SITE, 16, shuffle_buffer_tokens=256, rank=r, world_size=2,
                                       token_kinds=["image"], block_rows=64)))
             for r in range(2)]
    assert parts[0].shape == parts[1].shape
    a = {tuple(x) for x in parts[0].tolist()}
    assert not a & {tuple(x) for x in parts[1].tolist()}
