"""Reader: batches/s and peak RSS streaming stores of growing size through a fixed shuffle buffer.

For each store size (in multiples of the buffer's RAM) one subprocess writes a synthetic store
(random bf16 rows); a fresh one reads one shuffled epoch with ``Store.reader`` and reports
batches/s, its peak RSS (``ru_maxrss``) after imports and after reading, and its current RSS
at 25/50/75/100% of the epoch. Each read runs twice: with glibc's default malloc (whose dynamic
mmap threshold lets freed 16 MiB batches pile up in the heap until a plateau) and with
``MALLOC_MMAP_THRESHOLD_=1MiB`` (memory returned on free). RSS must not grow with the store
size: the reader holds the buffer plus one block, whatever the store holds.

    python benchmarks/bench_reader.py --d-model 1024 --buffer-mib 64 --multiples 2 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak; Linux: KiB


def current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def write_store(root: Path, rows: int, d_model: int, shard_mib: float) -> None:
    import numpy as np
    import torch

    from radinterp.store import StoreWriter, make_manifest

    m = make_manifest(model="synthetic", sites=["lm.blocks.0.resid_post"], dtype="bfloat16",
                      d_model=d_model, token_filter="all", shard_bytes=int(shard_mib * 2**20))
    per_study = 512
    g = torch.Generator().manual_seed(0)
    with StoreWriter(root, m) as w:
        for i, lo in enumerate(range(0, rows, per_study)):
            n = min(per_study, rows - lo)
            acts = torch.randn(n, d_model, generator=g).bfloat16()
            meta = {"study_index": np.zeros(n, np.int32), "position": np.arange(n, dtype=np.int32),
                    "token_id": np.zeros(n, np.int32), "kind": np.full(n, 3, np.int8),
                    "image_slot": np.full(n, -1, np.int8), "patch_row": np.full(n, -1, np.int16),
                    "patch_col": np.full(n, -1, np.int16), "field": np.full(n, -1, np.int8)}
            w.append([f"s{i}"], {"lm.blocks.0.resid_post": acts}, meta)


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: write a store of ``multiple`` x buffer RAM, or read one epoch."""
    import torch

    from radinterp.store import open_store

    torch.set_num_threads(1)
    buffer_tokens = int(args.buffer_mib * 2**20 / (4 * args.d_model))  # float32 in the buffer
    rows = int(args.multiple * args.buffer_mib * 2**20 / (2 * args.d_model))  # bf16 on disk
    root = Path(args.root)
    if args.child == "write":
        write_store(root, rows, args.d_model, args.shard_mib)
        return
    store = open_store(root)
    store_mib = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20
    rss_before = rss_mib()
    t0, n, trace = time.perf_counter(), 0, {}
    total = store.num_tokens() // args.batch_size
    marks = {max(1, total * q // 4): f"{q * 25}%" for q in (1, 2, 3, 4)}
    for batch in store.reader("lm.blocks.0.resid_post", args.batch_size,
                              shuffle_buffer_tokens=buffer_tokens, seed=0):
        n += 1
        if n in marks:
            trace[marks[n]] = round(current_rss_mib())
    dt = time.perf_counter() - t0
    print(json.dumps({
        "multiple_of_buffer": args.multiple, "store_mib": round(store_mib, 1),
        "store_rows": store.num_tokens(), "buffer_tokens": buffer_tokens,
        "buffer_mib": args.buffer_mib, "batches": n, "batch_size": args.batch_size,
        "seconds": round(dt, 2), "batches_per_s": round(n / dt, 1),
        "tokens_per_s": round(n * args.batch_size / dt), "peak_rss_mib_after_imports": round(rss_before),
        "peak_rss_mib_after_read": round(rss_mib()), "rss_mib_during_read": trace,
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-model", type=int, default=1024)
    p.add_argument("--buffer-mib", type=float, default=64.0, help="RAM allowed for the shuffle buffer")
    p.add_argument("--multiples", type=float, nargs="+", default=[2.0, 10.0])
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--shard-mib", type=float, default=64.0)
    p.add_argument("--json", default=None)
    p.add_argument("--child", choices=["write", "read"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--multiple", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--root", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    results = []
    for mult in args.multiples:
        tmp = Path(tempfile.mkdtemp(prefix="bench_reader_"))
        try:
            cmd = [sys.executable, __file__, "--multiple", str(mult), "--root",
                   str(tmp / "acts"), "--d-model", str(args.d_model), "--buffer-mib",
                   str(args.buffer_mib), "--batch-size", str(args.batch_size),
                   "--shard-mib", str(args.shard_mib)]
            subprocess.run([*cmd, "--child", "write"], check=True)
            for malloc in ("default", "mmap_threshold_1MiB"):
                env = dict(os.environ)
                if malloc != "default":  # glibc: big blocks via mmap, returned on free
                    env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 20)
                out = subprocess.run([*cmd, "--child", "read"], check=True, capture_output=True,
                                     text=True, env=env).stdout
                results.append({"malloc": malloc, **json.loads(out.strip().splitlines()[-1])})
                print(json.dumps(results[-1]), flush=True)
        finally:
            shutil.rmtree(tmp)
    growth = {m: [r["peak_rss_mib_after_read"] for r in results if r["malloc"] == m]
              for m in ("default", "mmap_threshold_1MiB")}
    summary = {"runs": results, "peak_rss_mib_by_store_size": growth}
    print(json.dumps({"peak_rss_mib_by_store_size": growth, "multiples": args.multiples}))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
