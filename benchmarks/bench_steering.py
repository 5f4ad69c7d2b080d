"""Steered vs plain generation time at the same batch, in one run (target: ratio <= 1.05).

    python benchmarks/bench_steering.py --n 8 --max-new-tokens 32 --repeats 2 --threads 1

The steered run adds an SAE-sized random direction at image positions (``add``) through
``radinterp.generation.generate(..., edits=...)``; plain and steered calls alternate so that
load from other jobs hits both alike. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="studies (one batch)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--where", default="image")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--data", default=None, help="phantom folder (default: generate --n phantoms in a temp dir)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import tempfile

    from radinterp.data.phantoms import PhantomConfig, generate_phantoms, load_phantom_studies
    from radinterp.generation import DecodeConfig, generate
    from radinterp.models import load_adapter
    from steering import SiteStats, random_direction
    from steering.methods import add_edit

    data = args.data or generate_phantoms(PhantomConfig(n=args.n, seed=99), tempfile.mkdtemp() + "/ph", progress=False)
    studies = load_phantom_studies(data)[: args.n]
    adapter = load_adapter("demo")
    site = "lm.blocks.15.resid_post"
    stats = SiteStats.measure(adapter, studies[:4], site)
    edits = {site: add_edit(random_direction(adapter.d_model, site, 0), stats, 1.0, args.where)}
    # the same length for both: no early stop, so the same number of forwards is timed
    adapter.model.generation_config.eos_token_id = None
    decode = DecodeConfig(max_new_tokens=args.max_new_tokens)
    generate(adapter, studies[:2], DecodeConfig(max_new_tokens=2))  # warm-up
    times: dict[str, list[float]] = {"plain": [], "steered": []}
    for _ in range(args.repeats):
        for name, ed in (("plain", None), ("steered", edits)):
            t = time.perf_counter()
            generate(adapter, studies, decode, batch_size=len(studies), edits=ed)
            times[name].append(time.perf_counter() - t)
    plain, steered = min(times["plain"]), min(times["steered"])
    print(json.dumps({"n": len(studies), "max_new_tokens": args.max_new_tokens, "where": args.where,
                      "threads": torch.get_num_threads(), "plain_s": times["plain"], "steered_s": times["steered"],
                      "ratio_min": steered / plain, "ratio_sum": sum(times["steered"]) / sum(times["plain"])}))


if __name__ == "__main__":
    main()
