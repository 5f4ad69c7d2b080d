"""How much of what the demo model's vision tower sees do its reports say?

    python benchmarks/bench_demo_ceiling.py --run RUN --val VAL --test HELDOUT \
        --quality OUT/report_quality.json

Reads the tower and its stage-1 probe from the training run's latest checkpoint (the shipped
weights drop the probe), picks each finding's probe threshold for the best F1 on the
validation phantoms, and applies it to the held-out phantoms. Prints per finding, side by
side: the probe's held-out AUROC and F1, and the F1 of the generated reports on the same
studies (``radinterp eval-reports``' output). A report F1 near the probe's says the language
model already reads what the tower sees; the gap to a target is then the tower's.

The report also sees the indication, and the phantoms' indications name some findings
outright ("fall, rib pain" only comes with a rib fracture: ``specific_hints``). The column
"probe + hint" calls a finding when its hint is in the indication or the probe fires
(threshold refit on validation): what a model that reads both the tower and the indication
perfectly would reach.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file


def load_tower_and_probe(run: Path):
    from radinterp.demo_model.config import DemoModelConfig
    from radinterp.demo_model.train_lm import latest_lm_checkpoint
    from radinterp.demo_model.train_vision import VISION_FILE, Probe, new_tower, strip_prefix

    cfg = DemoModelConfig.load(run / "cfg.json")
    latest = latest_lm_checkpoint(run)
    src = latest[1] / "params.safetensors" if latest else run / "vision" / VISION_FILE
    sd = load_file(str(src))
    tower, probe = new_tower(cfg, 0), Probe(cfg.vision_hidden, len(cfg.findings))
    tower.load_state_dict(strip_prefix(sd, "tower."))
    probe.load_state_dict(strip_prefix(sd, "probe."))
    return cfg, tower.eval(), probe.eval(), str(src)


def probe_scores(cfg, tower, probe, studies) -> tuple[np.ndarray, np.ndarray]:
    from radinterp.demo_model.data import cache_pixels, planted_targets
    from radinterp.demo_model.train_vision import predict
    from radinterp.models.image import ImagePreprocess

    px = cache_pixels(studies, ImagePreprocess(size=cfg.image_size), progress=False)
    return predict(tower, probe, px, bf16=True).numpy(), planted_targets(studies, cfg.findings).numpy() > 0


def hinted(cfg, studies) -> np.ndarray:
    """(studies, findings) bool: the indication carries the finding's specific hint."""
    from radinterp.data.phantoms.reports import specific_hints

    hints = specific_hints()
    return np.array([[f in hints and hints[f] in (s.indication or "") for f in cfg.findings]
                     for s in studies], dtype=bool)


def with_hint(score: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Scores where a hinted study outranks every other (finite, so thresholds stay scores)."""
    return np.where(hint, score.max() + 1.0, score)


def main() -> None:
    from radinterp.data.phantoms import finding_label
    from radinterp.demo_model.data import load_studies
    from radinterp.metrics import auroc, best_f1_threshold, f1_score, mean_defined

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True, help="Training run folder (python -m radinterp.demo_model.train --out).")
    ap.add_argument("--val", type=Path, required=True, help="Phantoms to pick thresholds on.")
    ap.add_argument("--test", type=Path, required=True, help="Held-out phantoms.")
    ap.add_argument("--quality", type=Path, help="report_quality.json of eval-reports on --test.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="Also write the table here.")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, tower, probe, src = load_tower_and_probe(args.run)
    val, test = load_studies(args.val), load_studies(args.test)
    pv, yv = probe_scores(cfg, tower, probe, val)
    pt, yt = probe_scores(cfg, tower, probe, test)
    hv, ht = hinted(cfg, val), hinted(cfg, test)
    quality = json.loads(args.quality.read_text())["per_finding"] if args.quality else {}
    rows = {}
    for j, f in enumerate(cfg.findings):
        t = best_f1_threshold(yv[:, j], pv[:, j])
        hv_j = with_hint(pv[:, j], hv[:, j])
        th = best_f1_threshold(yv[:, j], hv_j)  # above every probe score: the hint alone
        hint_pred = (pt[:, j] >= th) & (th <= pv[:, j].max()) | ht[:, j]
        rep = quality.get(finding_label(f), {}).get("f1")
        rows[f] = {"probe_auroc": auroc(yt[:, j], pt[:, j]), "probe_f1": f1_score(yt[:, j], pt[:, j] >= t),
                   "probe_f1_val": f1_score(yv[:, j], pv[:, j] >= t),
                   "hint_f1": f1_score(yt[:, j], hint_pred),
                   "hint_f1_val": f1_score(yv[:, j], hv_j >= th), "n_hinted": int(ht[:, j].sum()),
                   "report_f1": rep, "n_true": int(yt[:, j].sum())}
    print(f"tower + probe: {src}; thresholds from {args.val} ({len(yv)}), scored on {args.test} ({len(yt)})")
    print("| finding | n true | n hinted | probe AUROC | probe F1 (val threshold) | probe + hint F1 "
          "| report F1 |\n|---|---|---|---|---|---|---|")
    fmt = lambda x: "-" if x is None or np.isnan(x) else f"{x:.2f}"  # noqa: E731
    for f, r in rows.items():
        print(f"| {f} | {r['n_true']} | {r['n_hinted']} | {fmt(r['probe_auroc'])} | {fmt(r['probe_f1'])} "
              f"| {fmt(r['hint_f1'])} | {fmt(r['report_f1'])} |")
    macro = {k: mean_defined(r[k] for r in rows.values())
             for k in ("probe_f1", "probe_f1_val", "hint_f1", "hint_f1_val")}
    rep = [r["report_f1"] for r in rows.values() if r["report_f1"] is not None]
    macro["report_f1"] = float(np.mean(rep)) if len(rep) == len(rows) else None
    print(f"| **macro** | | | | **{macro['probe_f1']:.3f}** (val itself: {macro['probe_f1_val']:.3f}) "
          f"| **{macro['hint_f1']:.3f}** (val itself: {macro['hint_f1_val']:.3f}) "
          f"| **{fmt(macro['report_f1'])}** |")
    if args.json:
        args.json.write_text(json.dumps({"source": src, "per_finding": rows, "macro": macro}, indent=2))


if __name__ == "__main__":
    main()
