"""Reproduce the demo model from a seed: ``python -m radinterp.demo_model.train --out runs/demo``.

1. Generate training / validation phantoms (``radinterp.data.phantoms``; skipped when present).
2. Stage 1: vision tower + multi-label probe on the planted findings (:mod:`.train_vision`).
3. Stage 2: projector + LoRA on teacher-forced findings text (:mod:`.train_lm`).
4. Save the weights that are ours to ``OUT/weights`` (``--ship`` also copies them into
   ``radinterp/weights/demo``, the folder ``load_adapter("demo")`` reads).

Every stage checkpoints; re-running the same command resumes after a kill.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch
import typer

from radinterp.demo_model.build import build_demo_model, save_demo_weights
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.data import cache_patch_targets, cache_pixels, load_studies, planted_targets
from radinterp.demo_model.train_lm import (
    LMTrainConfig,
    encode_studies,
    make_adapter,
    train_lm,
    vision_features,
)
from radinterp.demo_model.train_vision import VisionTrainConfig, load_tower_weights, train_vision
from radinterp.models.image import ImagePreprocess

log = logging.getLogger(__name__)


def ensure_phantoms(out: Path, n: int, seed: int, size: int, progress: bool, masks: bool = False) -> Path:
    """Phantoms for training: frontal-only (no priors) so each study is 64 image tokens. Study
    ``i`` depends only on (seed, i), so folders of one seed share their first studies."""
    from radinterp.data.phantoms.config import PhantomConfig
    from radinterp.data.phantoms.writer import generate_phantoms

    cfg = PhantomConfig(n=n, seed=seed, size=size, prior_fraction=0.0, save_masks=masks)
    return generate_phantoms(cfg, out, progress=progress)


def run(
    out: Path, *, train_data: Path | None = None, val_data: Path | None = None,
    vision_data: Path | None = None, n_train: int = 6000, n_vision: int = 3000,
    n_val: int = 500, phantom_seed: int = 1, seed: int = 0, vision: VisionTrainConfig | None = None,
    lm: LMTrainConfig | None = None, model_cfg: DemoModelConfig | None = None, ship: bool = False,
    progress: bool = True,
) -> Path:
    """Run (or resume) both stages; returns the folder of the trained weights."""
    torch.manual_seed(seed)
    cfg = model_cfg or DemoModelConfig()
    vision = vision or VisionTrainConfig(seed=seed)
    lm = lm or LMTrainConfig(seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    train_data = train_data or ensure_phantoms(out / "phantoms_train", n_train, phantom_seed, 224, progress)
    val_data = val_data or ensure_phantoms(out / "phantoms_val", n_val, phantom_seed + 1, 224, progress)
    train, val = load_studies(train_data), load_studies(val_data)
    # stage 1 learns from the finding masks too (per-patch targets)
    vision_data = vision_data or ensure_phantoms(
        out / "phantoms_vision", n_vision, phantom_seed, 224, progress, masks=True
    )
    vis = load_studies(vision_data)
    icfg = ImagePreprocess(size=cfg.image_size)

    t0 = time.time()
    px_vis, px_val = cache_pixels(vis, icfg, progress), cache_pixels(val, icfg, progress)
    y_vis, y_val = planted_targets(vis, cfg.findings), planted_targets(val, cfg.findings)
    dense, known = None, None
    if any(s.masks for s in vis):
        dense, known = cache_patch_targets(vis, cfg.findings, icfg, cfg.patch_size, progress)
    m1 = train_vision(cfg, vision, px_vis, y_vis, px_val, y_val, out / "vision", progress,
                      patch_targets=dense, patch_known=known)
    del px_vis, dense
    log.info("stage 1 done in %.0f s: val mean AUROC %.3f", time.time() - t0, m1["mean_auroc"])

    t1 = time.time()
    model, tok = build_demo_model(cfg, seed=seed, lm_dtype=torch.bfloat16 if lm.bf16 else torch.float32)
    load_tower_weights(model.model.vision_tower, out / "vision")
    pool = min(len(train), lm.steps * lm.batch_size)
    adapter = make_adapter(model, tok, cfg)
    encoded = encode_studies(adapter, train[:pool])
    px_train = cache_pixels(train[:pool], icfg, progress)
    feats = vision_features(model.model.vision_tower, px_train, progress=progress)
    m2 = train_lm(model, tok, cfg, lm, encoded, feats, out / "lm", progress)
    log.info("stage 2 done in %.0f s: final loss %.4f", time.time() - t1, m2["final_loss_20"])

    meta = {
        "seed": seed, "phantom_seed": phantom_seed, "n_train": len(train), "n_lm_pool": pool,
        "train_data": str(train_data), "val_data": str(val_data), "vision_data": str(vision_data),
        "vision_config": vision.to_dict(),
        "lm_config": lm.to_dict(), "stage1_val": m1, "stage2_final_loss": m2["final_loss_20"],
        "stage2_losses": m2["losses"],
    }
    wdir = out / "weights"
    save_demo_weights(model, cfg, wdir, meta)
    if ship:
        from radinterp.models.demo import DEMO_WEIGHTS_DIR

        DEMO_WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
        for f in wdir.iterdir():
            shutil.copy2(f, DEMO_WEIGHTS_DIR / f.name)
        log.info("shipped weights to %s", DEMO_WEIGHTS_DIR)
    return wdir


def main(
    out: Path = typer.Option(Path("runs/demo"), help="Run folder (checkpoints, phantoms, weights)."),
    train_data: Path = typer.Option(None, help="Phantom folder to train on (default: generate)."),
    val_data: Path = typer.Option(None, help="Phantom folder for validation (default: generate)."),
    vision_data: Path = typer.Option(None, help="Phantom folder with masks for stage 1 (default: generate)."),
    n_vision: int = typer.Option(3000, help="Stage-1 phantoms (with masks) to generate."),
    n_train: int = typer.Option(6000, help="Training phantoms to generate."),
    n_val: int = typer.Option(500, help="Validation phantoms to generate."),
    phantom_seed: int = typer.Option(1, help="Seed of the training phantoms (validation: +1)."),
    seed: int = typer.Option(0, help="Seed of initialisation and data order."),
    vision_epochs: int = typer.Option(20, help="Stage-1 epochs."),
    lm_steps: int = typer.Option(500, help="Stage-2 optimizer steps."),
    lm_batch_size: int = typer.Option(4, help="Stage-2 studies per step."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest on a shared CPU)."),
    ship: bool = typer.Option(False, help="Copy the weights into radinterp/weights/demo."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train the demo model (both stages, resumable)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    run(out, train_data=train_data, val_data=val_data, vision_data=vision_data, n_train=n_train,
        n_vision=n_vision, n_val=n_val,
        phantom_seed=phantom_seed, seed=seed, vision=VisionTrainConfig(epochs=vision_epochs, seed=seed),
        lm=LMTrainConfig(steps=lm_steps, batch_size=lm_batch_size, seed=seed), ship=ship,
        progress=progress)


if __name__ == "__main__":
    typer.run(main)
