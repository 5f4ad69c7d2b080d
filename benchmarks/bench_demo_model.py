"""Loading and generation time of the ``demo`` model on this machine, plus sample reports.

    python benchmarks/bench_demo_model.py --n 8 --json /tmp/bench_demo.json
    python benchmarks/bench_demo_model.py --quality runs/eval/report_quality.json   # + F1 table

Prints: load time (LM from the safetensors cache + our weights), generation seconds per
study at batch 1 and batch ``--batch-size`` in float32 and bfloat16, image tokens per study,
and -- with ``--quality`` -- the per-finding F1 table and held-out generated reports beside
the phantom's true report.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def _phantoms(n: int, seed: int):
    from radinterp.data.phantoms.config import PhantomConfig
    from radinterp.data.phantoms.writer import generate_phantoms, load_phantom_studies

    out = Path(tempfile.mkdtemp(prefix="bench-demo-"))
    generate_phantoms(PhantomConfig(n=n, seed=seed, prior_fraction=0.0, save_masks=False), out, progress=False)
    return load_phantom_studies(out)


def time_generation(adapter, studies, batch_size: int, max_new_tokens: int) -> dict:
    t = time.time()
    n_tokens = 0
    for i in range(0, len(studies), batch_size):
        outs = adapter.generate(studies[i : i + batch_size], max_new_tokens=max_new_tokens)
        n_tokens += sum(len(adapter.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outs)
    dt = time.time() - t
    return {"batch_size": batch_size, "s_per_study": dt / len(studies), "generated_tokens": n_tokens,
            "tokens_per_s": n_tokens / dt}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=8, help="studies to generate for")
    ap.add_argument("--seed", type=int, default=3, help="phantom seed (3: held out from training)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--quality", type=Path, default=None, help="report_quality.json to summarise")
    ap.add_argument("--samples", type=int, default=5, help="generated-vs-true reports to print")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from radinterp.models import load_adapter

    studies = _phantoms(args.n, args.seed)
    result: dict = {"threads": torch.get_num_threads(), "n_studies": args.n}
    for dtype in (torch.float32, torch.bfloat16):
        t = time.time()
        ad = load_adapter("demo", dtype=dtype)
        name = str(dtype).removeprefix("torch.")
        result[name] = {"load_s": time.time() - t, "trained_weights": ad.trained,
                        "image_tokens_per_study": ad.n_image_tokens,
                        "prompt_tokens": len(ad.build_inputs(studies[0]).input_ids)}
        for bs in sorted({1, args.batch_size}):
            sub = studies[: max(bs, min(len(studies), 4 if bs == 1 else len(studies)))]
            result[name][f"batch{bs}"] = time_generation(ad, sub, bs, args.max_new_tokens)
        del ad
    print(json.dumps(result, indent=2))
    if args.quality:
        from eval.report_quality import format_table
        from radinterp.labels import is_positive

        q = json.loads(args.quality.read_text())
        print(f"\nReport quality on {q['n_studies']} held-out phantoms ({args.quality}):\n")
        print(format_table(q))
        print("\nHeld-out samples (generated | true):")
        trained = set(q["per_finding"])
        abnormal = [r for r in q["reports"] if any(is_positive(r["true_labels"], f) for f in trained)]
        normal = [r for r in q["reports"] if r not in abnormal]
        for r in abnormal[: max(1, args.samples - 1)] + normal[:1]:
            print(f"\n[{r['study_id']}]\n  generated: {r['generated']}\n  true:      {r['reference']}")
        result["quality_macro_f1"] = q["macro_f1"]
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
