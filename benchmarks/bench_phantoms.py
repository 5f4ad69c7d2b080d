"""Phantom throughput on one core: studies/s for N studies at SIZE px, written to disk.

    python benchmarks/bench_phantoms.py [--n 1000] [--size 224]

Target (issue 3): 1,000 studies at 224 px in under 60 s on one core. The generator is
single-threaded (BLAS / OpenMP threads are set to 1 here); CPU time is the figure that does
not depend on what else the machine runs, wall time is printed beside it.
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from radinterp.data.phantoms import PhantomConfig, generate_phantoms, read_records  # noqa: E402
from radinterp.data.phantoms.spec import render_image, sample_study  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pin", action="store_true", help="Pin the process to one CPU core.")
    args = ap.parse_args()
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cfg = PhantomConfig(n=args.n, seed=args.seed, size=args.size)
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        generate_phantoms(cfg, tmp, progress=False)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        recs = read_records(tmp)
        n_prior = sum(1 for r in recs if r["prior_image"])
        n_masks = sum(len(r["masks"]) for r in recs)
    m = min(200, args.n)
    t0 = time.process_time()
    for i in range(m):
        spec = sample_study(cfg, i)
        render_image(spec.patient, spec.current, cfg.size)
        if spec.prior is not None:
            render_image(spec.patient, spec.prior, cfg.size, healthy=False, masks=False)
    render_only = (time.process_time() - t0) / m
    where = "pinned to 1 core" if args.pin else "1 thread"
    print(f"phantoms: {args.n} studies @ {args.size}px, {where}: wall {total:.1f} s "
          f"({args.n / total:.1f} studies/s), CPU {cpu:.1f} s ({args.n / cpu:.1f} studies/s, "
          f"{1000 * cpu / args.n:.1f} ms/study); {n_prior} with priors, {n_masks} masks")
    print(f"render only (no reports / PNG I/O): {1000 * render_only:.1f} ms CPU/study")
    proj_wall, proj_cpu = 1000 * total / args.n, 1000 * cpu / args.n
    print(f"target 1000 studies < 60 s: projected wall {proj_wall:.1f} s, CPU {proj_cpu:.1f} s "
          f"-> {'PASS' if proj_cpu < 60 else 'MISS'} (wall > CPU means other jobs shared the "
          f"core; load avg {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
