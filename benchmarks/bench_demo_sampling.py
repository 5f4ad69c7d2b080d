"""Would the demo model's reports score higher if it were decoded differently?

    python benchmarks/bench_demo_sampling.py --val VAL --val-limit 96 --test HELDOUT \
        --samples 10 --quality OUT/report_quality.json --json sampling.json

Samples ``--samples`` whole reports per study (temperature 1, seed = the study's index) and
labels each with ``radinterp.labels``: the share of samples stating a finding is the model's own
probability of reporting it. Per finding it prints, on the held-out studies: that share's
AUROC, the F1 of a majority vote over the samples, the F1 of the share thresholded where F1
is best on the validation studies, and the greedy reports' F1 (``radinterp eval-reports``'
output, ``--quality``). Majority vote and the fitted threshold bound what consensus decoding
(pick the sample that agrees with the vote) could gain over greedy decoding.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger("bench_demo_sampling")


def sample_shares(adapter, studies, findings: list[str], k: int, max_new_tokens: int) -> np.ndarray:
    """(studies, findings): share of ``k`` sampled reports that state each finding."""
    from tqdm import tqdm

    from radinterp.labels import is_positive, label_report

    out = np.zeros((len(studies), len(findings)))
    for i, s in enumerate(tqdm(studies, desc="sample", unit="study")):
        torch.manual_seed(i)
        reports = adapter.generate([s], max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0,
                                   top_k=0, top_p=1.0, num_return_sequences=k)
        labels = [label_report(r) for r in reports]
        out[i] = [sum(is_positive(lab, f) for lab in labels) / k for f in findings]
    return out


def planted(studies, findings: list[str]) -> np.ndarray:
    from radinterp.labels import is_positive

    return np.array([[is_positive(s.labels, f) for f in findings] for s in studies], dtype=bool)


def main() -> None:
    from eval.report_quality import default_findings
    from radinterp.data.phantoms.writer import load_phantom_studies
    from radinterp.metrics import auroc, best_f1_threshold, f1_score, mean_defined
    from radinterp.models import load_adapter

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--val", type=Path, required=True, help="Phantoms to fit the thresholds on.")
    ap.add_argument("--val-limit", type=int, default=96)
    ap.add_argument("--test", type=Path, required=True, help="Held-out phantoms.")
    ap.add_argument("--test-limit", type=int, default=None)
    ap.add_argument("--samples", type=int, default=10, help="Reports sampled per study.")
    ap.add_argument("--max-new-tokens", type=int, default=125)
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quality", type=Path, help="eval-reports' report_quality.json on --test (greedy F1).")
    ap.add_argument("--json", type=Path, help="Also write per-study shares and the table here.")
    args = ap.parse_args()
    if args.samples < 1:
        ap.error("--samples must be >= 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    findings = default_findings()
    adapter = load_adapter("demo", dtype=getattr(torch, args.dtype))
    val = load_phantom_studies(args.val)[: args.val_limit]
    test = load_phantom_studies(args.test)[: args.test_limit]
    sv, yv = sample_shares(adapter, val, findings, args.samples, args.max_new_tokens), planted(val, findings)
    st, yt = sample_shares(adapter, test, findings, args.samples, args.max_new_tokens), planted(test, findings)
    greedy = json.loads(args.quality.read_text())["per_finding"] if args.quality else {}
    rows = {}
    for j, f in enumerate(findings):
        t = best_f1_threshold(yv[:, j], sv[:, j])
        rows[f] = {"share_auroc": auroc(yt[:, j], st[:, j]), "majority_f1": f1_score(yt[:, j], st[:, j] >= 0.5),
                   "fitted_f1": f1_score(yt[:, j], st[:, j] >= t), "threshold": t,
                   "greedy_f1": greedy.get(f, {}).get("f1"), "n_true": int(yt[:, j].sum())}
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    print(f"{args.samples} sampled reports per study; thresholds from {len(val)} studies of {args.val}; "
          f"scored on {len(test)} studies of {args.test}")
    print("| finding | n true | share AUROC | majority F1 | fitted-threshold F1 | greedy F1 |\n|---|---|---|---|---|---|")
    for f, r in rows.items():
        print(f"| {f} | {r['n_true']} | {fmt(r['share_auroc'])} | {fmt(r['majority_f1'])} | "
              f"{fmt(r['fitted_f1'])} | {fmt(r['greedy_f1'])} |")
    macro = {k: mean_defined(r[k] for r in rows.values()) for k in ("majority_f1", "fitted_f1")}
    g = [r["greedy_f1"] for r in rows.values() if r["greedy_f1"] is not None]
    macro["greedy_f1"] = float(np.mean(g)) if len(g) == len(rows) else None
    print(f"| **macro** | | | **{macro['majority_f1']:.3f}** | **{macro['fitted_f1']:.3f}** | "
          f"**{fmt(macro['greedy_f1'])}** |")
    if args.json:
        args.json.write_text(json.dumps({
            "per_finding": rows, "macro": macro, "config": {k: str(v) for k, v in vars(args).items()},
            "val_shares": {s.study_id: dict(zip(findings, sv[i])) for i, s in enumerate(val)},
            "test_shares": {s.study_id: dict(zip(findings, st[i])) for i, s in enumerate(test)},
        }, indent=1))


if __name__ == "__main__":
    main()
