"""Report-labeler accuracy and speed.

    python benchmarks/bench_labeler.py [--n 2000]

Prints macro-F1 (positive class and 3-class) on N phantom reports (ground truth from the
generator) and on the hand-written MIMIC-CXR / Open-i style cases of the test suite, and
reports labelled per second.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from radinterp.data.phantoms import PhantomConfig
from radinterp.data.phantoms.writer import study_record
from radinterp.labels import Labeler, agreement

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "labels"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2024)
    args = ap.parse_args()
    cfg = PhantomConfig(n=args.n, seed=args.seed, prior_fraction=0.4)
    recs = [study_record(cfg, i) for i in range(args.n)]
    lab = Labeler()
    t0 = time.perf_counter()
    pred = [lab.label(r["report"]) for r in recs]
    dt = time.perf_counter() - t0
    agr = agreement(pred, [r["labels"] for r in recs])
    print(f"phantom reports: n={args.n} macro_f1={agr['macro_f1']:.4f} "
          f"macro_f1_3class={agr['macro_f1_3class']:.4f} ({args.n / dt:.0f} reports/s)")
    worst = sorted(agr["observations"].items(), key=lambda kv: kv[1]["f1_3class"] or 1)[:3]
    for obs, row in worst:
        print(f"  lowest: {obs:26s} f1={row['f1']} f1_3class={row['f1_3class']:.4f} n={row['n']}")
    try:
        from realistic_reports import CASES
    except ImportError:
        return
    pred = [lab.label(t) for t, _ in CASES]
    agr = agreement(pred, [e for _, e in CASES])
    exact = sum(p == e for p, (_, e) in zip(pred, CASES))
    print(f"hand-written MIMIC/Open-i style: n={len(CASES)} macro_f1={agr['macro_f1']:.4f} "
          f"macro_f1_3class={agr['macro_f1_3class']:.4f} exact-match {exact}/{len(CASES)}")


if __name__ == "__main__":
    main()
