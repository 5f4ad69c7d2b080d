"""The recovery curve on the demo model: trained SAE features against same-sparsity random ones.

Each grid point trains one SAE on the training phantoms' activations and scores planted-finding
recovery on held-out phantoms (image positions; latent chosen on one half of the studies,
scored on the other), beside a random SAE of the same shape and L0 and a linear probe. Points
write ``WORK/points/<name>/recovery.json`` and are skipped when done, so a rerun resumes; the
captures are cached under WORK too. After every point the table and plot are rewritten:
``WORK/curve.md`` (markdown), ``WORK/curve.html`` (+ ``curve.png`` with kaleido).

    radinterp phantoms --n 400 --seed 12 --prior-fraction 0 --out EVAL
    radinterp phantoms --n 1600 --seed 11 --prior-fraction 0 --out TRAIN
    python benchmarks/recovery_curve.py --train-data TRAIN --eval-data EVAL --work WORK \\
        --point n=400,tokens=image,d=1152,k=8,p=20 --point n=1600,tokens=image,d=1152,k=8,p=20

A point is ``key=value`` pairs: n (training studies), tokens (image|all), d (d_sae), k,
p (passes), L (layer), cal (1|0: calibrate the threshold to L0 = k).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval.recovery.counterfactual import twin_studies  # noqa: E402
from eval.recovery.curve import CurvePoint, run_point, training_acts  # noqa: E402
from eval.recovery.plot import curve_rows, load_points, markdown_table, plot_curve  # noqa: E402
from eval.recovery.prefix_capture import cached_image_prefix  # noqa: E402
from eval.recovery.recovery import RecoveryConfig  # noqa: E402

log = logging.getLogger("recovery_curve")
KEYS = {"n": ("n_studies", int), "tokens": ("tokens", str), "d": ("d_sae", int), "k": ("k", int),
        "p": ("passes", float), "L": ("layer", int), "cal": ("calibrate", lambda v: v == "1")}
BLOCK = 400
"""Training phantoms per cached capture file."""


def parse_point(spec: str) -> CurvePoint:
    kw = {}
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if key not in KEYS:
            raise SystemExit(f"error: unknown point key {key!r} in {spec!r}; keys: {', '.join(KEYS)}")
        name, conv = KEYS[key]
        kw[name] = conv(value)
    return CurvePoint(**kw)


class Data:
    """Lazily captured activations: eval and twin image prefixes, training blocks."""

    def __init__(self, args) -> None:
        from radinterp.data.phantoms.writer import load_phantom_studies

        self.args, self.work = args, Path(args.work)
        self.sites = [f"lm.blocks.{i}.resid_post" for i in args.layers]
        self.eval_studies = load_phantom_studies(args.eval_data)[: args.n_eval]
        self.train_studies = load_phantom_studies(args.train_data)
        self._adapter = None
        self._blocks: dict[int, dict] = {}

    def adapter(self):
        from radinterp.models import load_adapter

        if self._adapter is None:
            self._adapter = load_adapter(self.args.model)
        return self._adapter

    def prefix(self, studies, name: str):
        return cached_image_prefix(self.adapter, studies, self.sites, self.work / f"{name}.safetensors",
                                   batch_size=8, progress=self.args.progress)

    def eval_scopes(self):
        if not hasattr(self, "_eval"):
            self._eval = self.prefix(self.eval_studies, f"eval_prefix_{len(self.eval_studies)}")
            self._twins = self.prefix(twin_studies(self.eval_studies), f"twin_prefix_{len(self.eval_studies)}")
        return self._eval, self._twins

    def train_acts(self, point: CurvePoint) -> torch.Tensor:
        if point.tokens == "all":
            return self._train_all(point)
        parts = []
        for b in range(math.ceil(point.n_studies / BLOCK)):
            if b not in self._blocks:
                chunk = self.train_studies[b * BLOCK:(b + 1) * BLOCK]
                if len(chunk) < BLOCK and (b + 1) * BLOCK <= point.n_studies:
                    raise SystemExit(f"error: {self.args.train_data} has too few studies for n="
                                     f"{point.n_studies}; generate more training phantoms")
                self._blocks[b] = self.prefix(chunk, f"train_prefix_{b:03d}")
            sa = self._blocks[b][point.site]
            keep = torch.from_numpy(sa.study < point.n_studies - b * BLOCK)
            parts.append(sa.acts[keep])
        return torch.cat(parts)

    def _train_all(self, point: CurvePoint) -> torch.Tensor:
        from radinterp.capture.config import CaptureConfig
        from radinterp.capture.runner import run_capture
        from radinterp.store import open_store

        out = self.work / f"train_all_{point.n_studies}"
        run_capture(CaptureConfig(model=self.args.model, data=self.args.train_data, out=str(out),
                                  sites=self.sites, token_filter="all", max_studies=point.n_studies,
                                  batch_size=8, progress=self.args.progress))
        return training_acts(open_store(out), point.site, "all", point.n_studies)


def write_outputs(results: Path, stem: Path) -> None:
    """``stem``.md (markdown table) and ``stem``.html (+ .png) of every point under ``results``."""
    rows = curve_rows(load_points(results))
    if rows:
        stem.with_suffix(".md").write_text(markdown_table(rows) + "\n")
        plot_curve(rows, stem)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-data", required=True)
    ap.add_argument("--eval-data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", default="demo")
    ap.add_argument("--n-eval", type=int, default=400)
    ap.add_argument("--layers", type=int, nargs="+", default=[11, 15])
    ap.add_argument("--point", action="append", default=[], help="grid point (repeat)")
    ap.add_argument("--random-mode", default="topk", choices=["topk", "threshold"],
                    help="sparsity of the random SAE: per-token top-k or one threshold")
    ap.add_argument("--tag", default="", help="score the SAEs of WORK/points again into "
                    "WORK/points-TAG (other --random-mode), training only missing ones")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--plot-only", action="store_true", help="rewrite the table and plot, train nothing")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    points = [parse_point(p) for p in args.point]
    bad = [p.name for p in points if p.layer not in args.layers]
    if bad:
        raise SystemExit(f"error: points {bad} read layers not in --layers {args.layers}; add them")
    results = work / (f"points-{args.tag}" if args.tag else "points")
    if args.plot_only:
        write_outputs(results, work / f"curve-{args.tag}" if args.tag else work / "curve")
        return
    data = Data(args)
    rcfg = RecoveryConfig(scopes=("image",), random_mode=args.random_mode)
    for p in points:
        t = time.time()
        scopes, twins = data.eval_scopes()
        res = run_point(p, data.train_acts, {"image": scopes[p.site]}, data.eval_studies, results,
                        twins=twins[p.site], grid=_grid(data), recovery_cfg=rcfg,
                        sae_root=work / "points")
        s = res["summary"].get("image", {})
        log.info("%s: F1 %s vs %s, mask %s vs %s, falls %s vs %s (%.0f s)", p.name,
                 *(f"{s.get(k, {}).get(w) or float('nan'):.3f}" for k in ("f1", "mask_share", "cf_drop")
                   for w in ("trained", "random")), time.time() - t)
        write_outputs(results, work / f"curve-{args.tag}" if args.tag else work / "curve")


def _grid(data: Data) -> tuple[int, int]:
    """(image_size, patch_size) of the adapter (mask -> patch grid)."""
    a = data.adapter()
    return a.image_cfg.size, a.patch_size


if __name__ == "__main__":
    main()
