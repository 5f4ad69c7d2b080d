"""Radiomic extraction throughput: images per second with 1 worker and with N, in one run.

Both runs measure the same images (a phantom folder's, or real-cxr's) on the same lung
regions; each timing excludes process start-up (a warm-up chunk per worker runs first on the
same pool) and
the parallel run's features are checked equal to the single-process ones. The target is
``N-worker rate >= 0.8 x N x 1-worker rate``; on a shared machine (other processes on the
same cores) the ratio says as much about the neighbours as about the code, so the load
average before and after is printed beside it.

    python benchmarks/bench_radiomics.py --data /tmp/ph --images 64 --workers 2
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.methods.radiomics.features import ExtractSettings  # noqa: E402
from eval.methods.radiomics.parallel import extract_many, make_pool  # noqa: E402
from eval.methods.radiomics.personas import load_arrays  # noqa: E402
from radinterp.data.sources import open_studies  # noqa: E402


def _rate(images: np.ndarray, regions: np.ndarray, settings: ExtractSettings, workers: int,
          chunk: int) -> tuple[float, np.ndarray]:
    """(images per second after a warm-up on the same pool, features)."""
    warm = [(images[i].astype(np.float32), regions[i]) for i in range(min(len(images), workers * chunk))]
    jobs = [(images[i].astype(np.float32), regions[i]) for i in range(len(images))]
    pool = make_pool(workers) if workers > 1 else None
    try:
        extract_many(warm, settings, workers, chunk, progress=False, pool=pool)  # imports, start-up
        t0 = time.perf_counter()
        x = extract_many(jobs, settings, workers, chunk, progress=False, pool=pool)
        return len(images) / (time.perf_counter() - t0), x
    finally:
        if pool is not None:
            pool.shutdown()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="phantom folder or real-cxr folder")
    ap.add_argument("--images", type=int, default=64, help="images to measure")
    ap.add_argument("--workers", type=int, default=2, help="N of the parallel run")
    ap.add_argument("--size", type=int, default=224, help="working grid side")
    ap.add_argument("--chunk", type=int, default=4, help="images per task")
    ap.add_argument("--out", help="write the result JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    studies = list(open_studies(args.data))[: args.images]
    arrays = load_arrays(studies, args.size, progress=False)
    settings = ExtractSettings()
    load0 = os.getloadavg()
    r1, x1 = _rate(arrays.images, arrays.regions, settings, 1, args.chunk)
    rn, xn = _rate(arrays.images, arrays.regions, settings, args.workers, args.chunk)
    res = {"images": len(studies), "size": args.size, "workers": args.workers,
           "cpus": os.cpu_count(), "images_per_s_1": round(r1, 2),
           f"images_per_s_{args.workers}": round(rn, 2),
           "speedup": round(rn / r1, 3), "target_speedup": round(0.8 * args.workers, 2),
           "equal_features": bool(np.array_equal(x1, xn)),
           "loadavg_before": [round(v, 2) for v in load0],
           "loadavg_after": [round(v, 2) for v in os.getloadavg()]}
    print(json.dumps(res, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
