"""GPU check: Matryoshka BatchTopK training step at MAIRA-2 size (d_model 4096, d_sae 16384,
k 64, bf16 autocast) on one GPU.

Reports, for each kernel mode (``dense``: matmul decode/gradients; ``sparse``: embedding_bag
gathers of the k active latents), the step time, tokens/s and the fraction of the GPU's
measured bf16 matmul rate that the step reaches:

- ``frac_dense_equiv``: 6 * B * d * F FLOPs per step (what a dense SAE step costs: encoder,
  decoder, and their gradients) / step time / measured peak;
- ``frac_encoder_only``: 2 * B * d * F (the one dense matmul a TopK step needs) / time / peak.

It also checks that both modes give the same loss and gradients on CUDA, and writes the
top CUDA kernels of one step per mode. Results go to ``$OUT/gpu_sae_training.json`` when
``OUT`` is set (and are printed).

    python benchmarks/gpu_sae_training.py                  # on a CUDA machine
    python benchmarks/gpu_sae_training.py --device cpu --small   # smoke test without a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: torch.device, n: int, iters: int = 20) -> float:
    """Measured bf16 (CUDA) / fp32 (CPU) matmul TFLOP/s on n x n x n."""
    dt = torch.bfloat16 if device.type == "cuda" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)
    for _ in range(3):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(iters):
        a @ b
    _sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t) / 1e12


def make_pool(n_batches: int, batch: int, d: int, device: torch.device) -> torch.Tensor:
    """Synthetic sparse-superposition activations, (n_batches * batch, d) on ``device``."""
    gen = torch.Generator(device=device).manual_seed(0)
    n_feat = 4 * d
    dirs = torch.randn(n_feat, d, device=device, generator=gen)
    dirs /= dirs.norm(dim=1, keepdim=True)
    out = torch.empty(n_batches * batch, d, device=device)
    for i in range(n_batches):
        on = torch.rand(batch, n_feat, device=device, generator=gen) < (48.0 / n_feat)
        mags = torch.rand(batch, n_feat, device=device, generator=gen) * 3
        out[i * batch:(i + 1) * batch] = (on * mags) @ dirs + 1.0
    return out


def build_trainer(args, mode: str, pool: torch.Tensor, out: Path):
    from sae_training import TensorActivationSource, TrainConfig, Trainer

    widths = [args.d_sae // 8, args.d_sae // 4, args.d_sae // 2, args.d_sae]
    cfg = TrainConfig(d_sae=args.d_sae, k=args.k, widths=widths, batch_size=args.batch,
                      total_tokens=args.batch * 10**6, lr=2e-4, lr_schedule="constant",
                      dead_tokens=args.batch * 3, kernels=mode, device=str(args.device),
                      matmul_dtype="bfloat16" if args.device.type == "cuda" else "float32",
                      checkpoint_every=0, progress=False, seed=0)
    trainer = Trainer(cfg, TensorActivationSource(pool, shuffle=False), out / mode, overwrite=True)
    trainer._build()
    trainer._data_init(pool[: args.batch])
    return trainer


def time_steps(trainer, pool: torch.Tensor, args) -> float:
    n = pool.shape[0] // args.batch
    for i in range(args.warmup):
        trainer._step(pool[(i % n) * args.batch:((i % n) + 1) * args.batch])
    _sync(args.device)
    t = time.perf_counter()
    for i in range(args.steps):
        trainer._step(pool[(i % n) * args.batch:((i % n) + 1) * args.batch])
    _sync(args.device)
    return (time.perf_counter() - t) / args.steps


def kernel_table(trainer, x: torch.Tensor, device: torch.device) -> str:
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        trainer._step(x)
        _sync(device)
    keys = ["self_device_time_total", "self_cuda_time_total"] if device.type == "cuda" else []
    for key in [*keys, "self_cpu_time_total"]:
        try:
            return prof.key_averages().table(sort_by=key, row_limit=15)
        except Exception:  # column names differ across torch versions
            continue
    return "(profiler table unavailable)"


def check_modes_agree(args, pool: torch.Tensor, out: Path) -> dict[str, float]:
    """Same init, same batch: loss and gradients of dense vs sparse kernels."""
    res = {}
    grads = {}
    for mode in ("dense", "sparse"):
        tr = build_trainer(args, mode, pool, out)
        dead = torch.zeros(args.d_sae, dtype=torch.bool, device=args.device)
        dead[: args.d_sae // 16] = True  # exercise the aux-k path too
        with torch.autocast(args.device.type, dtype=torch.bfloat16,
                            enabled=args.device.type == "cuda"):
            o = tr.objective(pool[: args.batch], dead, 0.0)
        o["loss"].backward()
        grads[mode] = {n: p.grad.detach().float().clone() for n, p in tr.sae.named_parameters()}
        res[f"loss_{mode}"] = float(o["loss"].detach())
        del tr
    for name in grads["dense"]:
        a, b = grads["dense"][name], grads["sparse"][name]
        res[f"grad_rel_diff_{name}"] = float((a - b).norm() / b.norm().clamp_min(1e-12))
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--small", action="store_true", help="tiny sizes (CPU smoke test)")
    p.add_argument("--d-in", type=int, default=4096)
    p.add_argument("--d-sae", type=int, default=16384)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    if args.small:
        args.d_in, args.d_sae, args.k, args.batch, args.steps, args.warmup = 64, 512, 8, 256, 3, 1
    args.device = torch.device(args.device)
    if args.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    d, F, B = args.d_in, args.d_sae, args.batch
    res: dict[str, object] = {
        "device": torch.cuda.get_device_name(args.device) if args.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "sizes": {"d_in": d, "d_sae": F, "k": args.k, "batch": B},
    }
    peak = matmul_peak(args.device, 8192 if not args.small else 512)
    res["matmul_peak_tflops"] = peak
    pool = make_pool(8, B, d, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        try:
            res["agreement"] = check_modes_agree(args, pool, tmp)
        except Exception as exc:  # report and go on to the timings
            res["agreement"] = {"error": repr(exc)}
        tables = {}
        for mode in ("dense", "sparse"):
            if args.device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(args.device)
            try:
                tr = build_trainer(args, mode, pool, tmp)
                step = time_steps(tr, pool, args)
            except Exception as exc:
                res[mode] = {"error": repr(exc)}
                continue
            res[mode] = {
                "step_ms": step * 1e3,
                "tokens_per_s": B / step,
                "frac_dense_equiv": 6 * B * d * F / step / (peak * 1e12),
                "frac_encoder_only": 2 * B * d * F / step / (peak * 1e12),
                "peak_mem_gib": (torch.cuda.max_memory_allocated(args.device) / 2**30
                                 if args.device.type == "cuda" else None),
            }
            try:
                tables[mode] = kernel_table(tr, pool[:B], args.device)
            except Exception as exc:  # the numbers above matter more than the table
                tables[mode] = f"(profiling failed: {exc})"
            del tr
    ok = [m for m in ("dense", "sparse") if "tokens_per_s" in res[m]]
    res["best_mode"] = max(ok, key=lambda m: res[m]["tokens_per_s"]) if ok else None
    text = json.dumps(res, indent=2)
    print(text)
    for mode, table in tables.items():
        print(f"\n== top kernels, {mode} ==\n{table}")
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "gpu_sae_training.json").write_text(text)
        (out_dir / "gpu_sae_training_kernels.txt").write_text(
            "\n".join(f"== {m} ==\n{t}" for m, t in tables.items()))


if __name__ == "__main__":
    main()
