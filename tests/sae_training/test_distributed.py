"""Two real gloo processes (torch.multiprocessing): identical weights on both ranks, and the
same result as one process with the same global batch (threshold and dead-latent counters are
reduced over ranks)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from sae_training import TensorActivationSource, TrainConfig, Trainer
from sae_training.metrics import read_metrics
from tests.sae_training.conftest import sparse_activations

KEYS = ("W_enc", "b_enc", "W_dec", "b_dec", "threshold")


def _cfg() -> TrainConfig:
    # dead_tokens small so the aux-k loss (and its cross-rank dead mask) is exercised
    return TrainConfig(d_sae=64, k=4, widths=[8, 32, 64], batch_size=64, total_tokens=64 * 24,
                       lr=3e-3, dead_tokens=128, log_every=8, checkpoint_every=10,
                       progress=False, seed=3)


def _dump(trainer: Trainer, path: Path) -> None:
    state = {k: v.detach().clone() for k, v in trainer.sae.state_dict().items() if k in KEYS}
    state["since_fired"] = trainer.since_fired.clone()
    save_file(state, str(path))


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from sae_training import distributed as D

    try:
        trainer = Trainer(_cfg(), TensorActivationSource(sparse_activations(2048)), Path(tmp) / "ddp")
        trainer.fit()
        _dump(trainer, Path(tmp) / f"rank{rank}.safetensors")
    finally:
        D.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_each_other_and_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0 = load_file(str(tmp_path / "rank0.safetensors"))
    r1 = load_file(str(tmp_path / "rank1.safetensors"))
    for key in r0:
        assert torch.equal(r0[key], r1[key]), f"ranks differ in {key}"

    single = Trainer(_cfg(), TensorActivationSource(sparse_activations(2048)), tmp_path / "one")
    single.fit()
    _dump(single, tmp_path / "single.safetensors")
    one = load_file(str(tmp_path / "single.safetensors"))
    m_one, m_ddp = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "ddp")
    assert any(r["aux_loss"] > 0 for r in m_one)  # dead latents existed: aux-k loss was on
    for a, b in zip(m_one, m_ddp, strict=True):
        for key in ("explained_variance", "l0", "dead_latents", "aux_loss",
                    "batchtopk_threshold"):
            assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(a[key])), key
    assert torch.equal(r0["since_fired"], one["since_fired"])
    for key in KEYS:
        assert torch.allclose(r0[key], one[key], atol=2e-5, rtol=1e-4), key
    # both runs wrote a loadable SAE folder
    assert (tmp_path / "ddp" / "done.json").exists() and (tmp_path / "one" / "done.json").exists()


def test_torchrun_runs_the_train_entry_point(tmp_path: Path) -> None:
    import subprocess
    import sys

    from radinterp.sae import load_sae

    save_file({"activations": sparse_activations(1024)}, str(tmp_path / "acts.safetensors"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(_free_port()), "-m", "sae_training",
           "--acts", str(tmp_path / "acts.safetensors"), "--out", str(tmp_path / "sae"),
           "--d-sae", "64", "--k", "4", "--widths", "16,64", "--batch-size", "64",
           "--total-tokens", str(64 * 10), "--checkpoint-every", "4", "--no-progress",
           "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    record = json.loads((tmp_path / "sae" / "train_cfg.json").read_text())
    assert record["world_size"] == 2
    assert load_sae(tmp_path / "sae").cfg.widths == [16, 64]
