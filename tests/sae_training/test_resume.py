"""Kill -9 a training process after its first checkpoint, resume it, and get the same final
weights as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from radinterp.sae import load_sae
from sae_training import TensorActivationSource, TrainConfig, Trainer
from tests.sae_training.conftest import sparse_activations

STEPS, BATCH, EVERY = 800, 64, 25


def _command(acts: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "sae_training", "--acts", str(acts), "--out", str(out),
            "--d-sae", "64", "--k", "4", "--widths", "8,32,64", "--batch-size", str(BATCH),
            "--total-tokens", str(BATCH * STEPS), "--lr", "1e-3", "--seed", "5",
            "--checkpoint-every", str(EVERY), "--log-every", "100", "--no-progress",
            "--device", "cpu"]


def test_sigkill_then_resume_gives_the_same_weights(tmp_path: Path) -> None:
    acts = sparse_activations(1024)
    save_file({"activations": acts}, str(tmp_path / "acts.safetensors"))
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_command(tmp_path / "acts.safetensors", out), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "checkpoint" / "state.json").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "done.json").exists()  # really killed mid-run

    resumed = subprocess.run(_command(tmp_path / "acts.safetensors", out), env=env,
                             capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same as the subprocesses (OMP_NUM_THREADS=1): same float sums
    cfg = TrainConfig(d_sae=64, k=4, widths=[8, 32, 64], batch_size=BATCH,
                      total_tokens=BATCH * STEPS, lr=1e-3, seed=5, checkpoint_every=0,
                      log_every=100, progress=False, device="cpu")
    try:
        Trainer(cfg, TensorActivationSource(acts), tmp_path / "straight").fit()
    finally:
        torch.set_num_threads(threads)
    a, b = load_sae(out), load_sae(tmp_path / "straight")
    for name in ("W_enc", "b_enc", "W_dec", "b_dec", "threshold"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
