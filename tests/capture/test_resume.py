"""kill -9 in the middle of a capture, rerun: the store equals an uninterrupted run's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from radinterp.capture import CaptureConfig, run_capture
from radinterp.store import open_store
from tests.capture.conftest import REAL_CXR

ROOT = Path(__file__).parents[2]
ARGS = dict(model="tiny", data=str(REAL_CXR), sites=["lm.blocks.1.resid_post", "lm.blocks.3.resid_post"],
            batch_size=3, max_studies=60, dtype="bfloat16", shard_mb=0.02, image_size=56,
            progress=False)


def cli_args(out: Path) -> list[str]:
    args = [sys.executable, "-m", "radinterp.capture", "--model", "tiny", "--data", str(REAL_CXR),
            "--out", str(out), "--batch-size", "3", "--max-studies", "60", "--dtype", "bfloat16",
            "--shard-mb", "0.02", "--image-size", "56", "--no-progress"]
    for s in ARGS["sites"]:
        args += ["--site", s]
    return args


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def committed(root: Path) -> int:
    try:
        return len(json.loads((root / "progress" / "rank00000.json").read_text())["entries"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_kill_9_then_resume_is_identical(tmp_path):
    out = tmp_path / "acts"
    run_capture(CaptureConfig(out=str(out), **ARGS))  # uninterrupted reference, same path
    reference = snapshot(out)
    n_entries = committed(out)
    out.rename(tmp_path / "reference")

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cli_args(out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while committed(out) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = committed(out)
    assert proc.returncode == -signal.SIGKILL
    assert 3 <= killed_at < n_entries, "the kill must land mid-capture"
    partial = open_store(out)
    assert not partial.complete and partial.num_tokens() > 0
    partial.verify()  # what is committed is consistent

    done = subprocess.run(cli_args(out), cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    resumed = int(re.search(r"(\d+) already done", done.stdout).group(1))
    assert resumed > 0
    got = snapshot(out)
    assert sorted(got) == sorted(reference)  # no file missing, none left over (temp files)
    assert [name for name in reference if got[name] != reference[name]] == []
