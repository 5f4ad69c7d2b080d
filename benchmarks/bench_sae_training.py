"""Our Matryoshka BatchTopK trainer vs sae-lens's ``SAETrainer`` on the same activations.

Both read the same activation store (ours through ``StoreActivationSource``, sae-lens through
the store's ``sae_lens_provider``), with the same architecture and hyper-parameters (d_in,
d_sae, k, Matryoshka widths, batch, lr, constant schedule, grad clip 1, aux-k coefficient 1,
b_dec initialised to the geometric median of the first batch). Reports tokens/s, held-out
explained variance and L0 for both, and the ratio. Target: ours >= 3x sae-lens tokens/s at
explained variance >= sae-lens - 0.01.

It also compares our trained (BatchTopK) form with the saved (JumpReLU) form, whose threshold
the trainer calibrates on rows it holds out of the store (``calibration.json``), side by side
on the benchmark's own held-out set. Target: the saved form's L0 within 15% of k and its
explained variance within 0.02 of the BatchTopK form's (``saved_sae_target_met``).

    python benchmarks/bench_sae_training.py                       # d_in 576, d_sae 4608, k 32
    python benchmarks/bench_sae_training.py --steps 5 --d-in 64 --d-sae 512 --k 8 --batch 512

The activations are synthetic (sparse non-negative mixtures of 8 * d_in unit directions with
power-law magnitudes, plus noise), so the explained variance numbers compare the trainers,
not a model. Timings include reading the store.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

SITE = "lm.blocks.15.resid_post"


def synthetic(n: int, d_in: int, seed: int, active: float = 24.0) -> torch.Tensor:
    """(n, d_in) rows: ~``active`` of 8*d_in unit directions with power-law magnitudes."""
    gen = torch.Generator().manual_seed(seed)
    n_feat = 8 * d_in
    dirs = torch.randn(n_feat, d_in, generator=torch.Generator().manual_seed(1234))
    dirs /= dirs.norm(dim=1, keepdim=True)
    freq = 1.0 / torch.arange(1, n_feat + 1).float() ** 0.7
    freq = freq / freq.sum() * active  # expected active features per row
    out = torch.empty(n, d_in)
    for lo in range(0, n, 4096):
        hi = min(n, lo + 4096)
        on = torch.rand(hi - lo, n_feat, generator=gen) < freq
        mags = torch.rand(hi - lo, n_feat, generator=gen) * 3 + 0.5
        out[lo:hi] = (on * mags) @ dirs + 0.05 * torch.randn(hi - lo, d_in, generator=gen)
    return out + 1.0


def write_store(root: Path, acts: torch.Tensor) -> None:
    from radinterp.store import StoreWriter, make_manifest
    from radinterp.store.format import META_COLUMNS

    manifest = make_manifest(model="synthetic", sites=[SITE], dtype="float32",
                             d_model=acts.shape[1], token_filter="all", shard_bytes=64 << 20)
    with StoreWriter(root, manifest, async_write=False) as w:
        for s, lo in enumerate(range(0, acts.shape[0], 4096)):
            chunk = acts[lo:lo + 4096]
            meta = {c: np.zeros(chunk.shape[0], dt) for c, dt in META_COLUMNS.items()}
            w.append([f"s{s}"], {SITE: chunk}, meta)


@torch.no_grad()
def evaluate(encode_decode, x: torch.Tensor) -> dict[str, float]:
    x_hat, z = encode_decode(x)
    total = (x - x.mean(0)).pow(2).sum()
    return {"explained_variance": float(1 - (x - x_hat).pow(2).sum() / total),
            "l0": float((z != 0).float().sum(1).mean())}


def run_ours(args, store: Path, out: Path, widths: list[int]) -> tuple[float, object]:
    from sae_training import StoreActivationSource, TrainConfig, Trainer

    cfg = TrainConfig(d_sae=args.d_sae, k=args.k, widths=widths, batch_size=args.batch,
                      total_tokens=args.batch * args.steps, lr=args.lr, lr_schedule="constant",
                      held_out_tokens=args.calibration_tokens,
                      dead_tokens=10**12, checkpoint_every=0, log_every=max(1, args.steps),
                      progress=False, kernels=args.kernels, seed=0)
    src = StoreActivationSource(store, shuffle_buffer_tokens=args.shuffle)
    t0 = time.perf_counter()
    trainer = Trainer(cfg, src, out, overwrite=True)
    sae = trainer.fit()
    return time.perf_counter() - t0, sae


def time_calibration(sae, x: torch.Tensor, batch: int) -> float:
    """Seconds one calibration of ``sae`` on ``x`` takes (a copy: ``sae`` is left as it is)."""
    import copy

    from sae_training.calibrate import calibrate

    t0 = time.perf_counter()
    calibrate(copy.deepcopy(sae), x, batch)
    return time.perf_counter() - t0


def run_sae_lens(args, store: Path, widths: list[int], b_dec: torch.Tensor) -> tuple[float, object]:
    from sae_lens.config import LoggingConfig, SAETrainerConfig
    from sae_lens.saes.matryoshka_batchtopk_sae import (
        MatryoshkaBatchTopKTrainingSAE,
        MatryoshkaBatchTopKTrainingSAEConfig,
    )
    from sae_lens.training.sae_trainer import SAETrainer

    from radinterp.store import open_store

    torch.manual_seed(0)
    sae = MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(
        d_in=args.d_in, d_sae=args.d_sae, k=args.k, matryoshka_widths=list(widths),
        aux_loss_coefficient=1.0, device="cpu", dtype="float32"))
    with torch.no_grad():
        sae.b_dec.copy_(b_dec)
    cfg = SAETrainerConfig(total_training_samples=args.batch * args.steps,
                           train_batch_size_samples=args.batch, lr=args.lr, lr_end=args.lr,
                           lr_scheduler_name="constant", device="cpu", autocast=False,
                           dead_feature_window=10**9, feature_sampling_window=10**9,
                           logger=LoggingConfig(log_to_wandb=False))
    src = open_store(store).site_batches(SITE, shuffle_buffer_tokens=args.shuffle)
    provider = src.sae_lens_provider(args.batch, seed=0)
    t0 = time.perf_counter()
    SAETrainer(cfg=cfg, sae=sae, data_provider=provider).fit()
    return time.perf_counter() - t0, sae


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d-in", type=int, default=576)
    p.add_argument("--d-sae", type=int, default=4608)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both trainers")
    p.add_argument("--kernels", default="sparse")
    p.add_argument("--shuffle", type=int, default=16384, help="store shuffle buffer rows")
    p.add_argument("--eval-tokens", type=int, default=8192)
    p.add_argument("--calibration-tokens", type=int, default=8192,
                   help="rows our trainer holds out of the store to calibrate the threshold "
                        "(added to the store, so both trainers see batch * steps other rows)")
    p.add_argument("--skip-sae-lens", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # pay torch's lazy optimizer imports
    import sae_lens.training.sae_trainer  # noqa: F401  (imports outside the timed region)
    widths = [args.d_sae // 8, args.d_sae // 4, args.d_sae // 2, args.d_sae]
    tokens = args.batch * args.steps

    from sae_training.batchtopk import encode_batchtopk
    from sae_training.calibrate import CALIBRATION_FILE
    from sae_training.init import geometric_median

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        acts = synthetic(tokens + args.calibration_tokens, args.d_in, seed=0)
        held_out = synthetic(args.eval_tokens, args.d_in, seed=1)
        write_store(tmp / "store", acts)
        del acts
        first = next(iter(__import__("sae_training").StoreActivationSource(
            tmp / "store", shuffle_buffer_tokens=args.shuffle).iter_batches(args.batch)))
        b_dec = geometric_median(first)
        res: dict[str, object] = {"config": vars(args) | {"widths": widths, "json": None},
                                  "load_avg_before": os.getloadavg()}

        secs, ours = run_ours(args, tmp / "store", tmp / "ours", widths)
        bt = encode_batchtopk(ours, held_out).codes.to_dense()  # the eval set as one batch
        res["ours"] = {
            "seconds": secs, "tokens_per_s": tokens / secs,
            "batchtopk": evaluate(lambda x: (bt @ ours.W_dec + ours.b_dec, bt), held_out),
            "jumprelu": evaluate(lambda x: (ours(x), ours.encode(x)), held_out),
            "calibration": json.loads((tmp / "ours" / CALIBRATION_FILE).read_text()),
            "calibration_seconds": time_calibration(ours, held_out, args.batch),
        }
        trained, saved = res["ours"]["batchtopk"], res["ours"]["jumprelu"]
        res["saved_sae"] = {
            "form": ["batchtopk (trained)", "jumprelu (saved)"],
            "explained_variance": [trained["explained_variance"], saved["explained_variance"]],
            "l0": [trained["l0"], saved["l0"]],
            "l0_within_15pct_of_k": abs(saved["l0"] - args.k) <= 0.15 * args.k,
            "ev_within_0.02": abs(saved["explained_variance"]
                                  - trained["explained_variance"]) <= 0.02,
        }
        res["saved_sae_target_met"] = bool(res["saved_sae"]["l0_within_15pct_of_k"]
                                           and res["saved_sae"]["ev_within_0.02"])
        if not args.skip_sae_lens:
            secs, theirs = run_sae_lens(args, tmp / "store", widths, b_dec)
            theirs.eval()
            res["sae_lens"] = {
                "seconds": secs, "tokens_per_s": tokens / secs,
                "batchtopk": evaluate(lambda x: (theirs.decode(theirs.encode(x)), theirs.encode(x)),
                                      held_out),
            }
            ratio = res["ours"]["tokens_per_s"] / res["sae_lens"]["tokens_per_s"]
            dev = (res["ours"]["batchtopk"]["explained_variance"]
                   - res["sae_lens"]["batchtopk"]["explained_variance"])
            res["speedup"] = ratio
            res["ev_ours_minus_sae_lens"] = dev
            res["target_met"] = bool(ratio >= 3.0 and dev >= -0.01)
        res["load_avg_after"] = os.getloadavg()
    print(json.dumps(res, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
