"""``radinterp eval`` cost: the fidelity splice vs a plain forward over the same tokens, one run.

Loads the SAE, the store's model and ``--studies`` studies (with reports) once, then times,
alternating and keeping each one's fastest of ``--repeats``:

- ``forward``: the plain model forward of every batch (what capture or generation pays);
- ``fidelity``: what ``radinterp eval`` runs on the same batches: the clean forward (logits at
  report positions only), the layers after the site again on the SAE's reconstruction, and the
  one-token zero-ablation; ``fidelity + random SAE`` also splices the random SAE (the default
  of ``radinterp eval``);
- ``fidelity (edit)``: the same numbers from full edited forwards (the general path), for scale.

It also times one whole ``run_eval`` (reconstruction over the store rows, fidelity, probing)
into a temporary folder. Target: fidelity / forward <= 1.5.

    nice -n 5 python benchmarks/bench_sae_eval.py --sae /tmp/ep/sae --acts /tmp/ep/acts_eval --studies 16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sae", required=True)
    ap.add_argument("--acts", required=True)
    ap.add_argument("--studies", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from radinterp.models import load_adapter
    from radinterp.sae import load_sae
    from radinterp.sae.baselines import random_like
    from radinterp.store import open_store
    from eval.sae_eval import EvalConfig, run_eval
    from eval.sae_eval.fidelity import Splicer

    sae = load_sae(args.sae)
    store = open_store(args.acts)
    site = sae.cfg.site or store.sites[0]
    adapter = load_adapter(store.manifest["model"])
    studies = [s for s in store.open_studies() if s.report][: args.studies]
    batches = [adapter.collate([adapter.build_inputs(s, with_report=True)
                                for s in studies[i:i + args.batch]])
               for i in range(0, len(studies), args.batch)]
    tokens = sum(sum(b.lengths) for b in batches)
    variants = {"sae": sae.forward}
    x = torch.cat([a for a, _ in store.iter_chunks(site, chunk_rows=4096)])[:8192]
    rand = random_like(sae, x, mode="threshold")
    with_random = {**variants, "random": lambda h: rand.decode(
        rand.encode(h.reshape(-1, h.shape[-1]))).reshape(h.shape)}

    def forward() -> None:
        with torch.inference_mode():
            for b in batches:
                adapter.model(**adapter.to_device(b), use_cache=False)

    def fidelity(method: str, variants: dict):
        def run() -> None:
            sp = Splicer(adapter, site, variants, method)
            sp.zero_logits()
            for b in batches:
                sp.add_batch(b)
            run.result = sp.sums.result()
        return run

    timers = {"forward": forward, "fidelity": fidelity("suffix", variants),
              "fidelity + random SAE": fidelity("suffix", with_random),
              "fidelity (edit)": fidelity("edit", variants)}
    forward()  # warm-up
    best = {k: float("inf") for k in timers}
    for _ in range(args.repeats):
        for name, fn in timers.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_eval(EvalConfig(sae=args.sae, acts=args.acts, out=tmp, fidelity_studies=args.studies,
                            fidelity_batch=args.batch, progress=False))
        whole = time.perf_counter() - t0
    res = timers["fidelity"].result
    out = {
        "site": site, "studies": len(studies), "tokens": tokens, "report_tokens": res["report_tokens"],
        "threads": args.threads,
        "seconds": {k: round(v, 3) for k, v in best.items()},
        "fidelity_over_forward": round(best["fidelity"] / best["forward"], 3),
        "with_random_over_forward": round(best["fidelity + random SAE"] / best["forward"], 3),
        "edit_over_forward": round(best["fidelity (edit)"] / best["forward"], 3),
        "run_eval_seconds": round(whole, 2),
        "ce_loss_score": res["ce_loss_score"], "target": "fidelity_over_forward <= 1.5",
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
