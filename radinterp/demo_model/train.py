"""Reproduce the demo model from a seed: ``python -m radinterp.demo_model.train --out runs/demo``.

1. Generate training / validation phantoms (``radinterp.data.phantoms``; skipped when present).
2. Stage 1: vision tower + per-patch probe on the planted findings and their masks
   (:mod:`.train_vision`).
3. Stage 1.5: align the projector with SmolLM2's word embeddings using the probe (:mod:`.align`).
4. Stage 2: projector + LoRA on teacher-forced findings text, sentences that state a finding
   weighted up; the tower keeps training on its stage-1 loss meanwhile (:mod:`.train_lm`).
5. Stage 3: the projector is re-aligned with image-level targets (every patch token maps to
   the words of the image's findings, not only the patches that show them), then stage 2's
   training continues at half the learning rate on finding-balanced batches (half of each
   batch: a finding drawn uniformly, then a study that has it).
6. Stage 4 (``--polish-steps`` > 0): a second round of stage 3's training with the learning
   rate restarted (warm-up, then cosine decay again) and a new data order.
7. Save the weights that are ours to ``OUT/weights`` (``--ship`` also copies them into
   ``radinterp/weights/demo``, the folder ``load_adapter("demo")`` reads).

Every stage checkpoints; re-running the same command resumes after a kill.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path

import torch
import typer

from radinterp.demo_model.align import (
    AlignConfig,
    align_projector,
    alignment_targets,
    anchor_embeddings,
    patch_probabilities,
)
from radinterp.demo_model.build import build_demo_model, save_demo_weights
from radinterp.demo_model.ckpt import has_checkpoint
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.data import cache_patch_targets, cache_pixels, load_studies, planted_targets
from radinterp.demo_model.train_lm import (
    STAGE2_DIR,
    STAGE3_DIR,
    STAGE4_DIR,
    LMTrainConfig,
    VisionAux,
    encode_studies,
    make_adapter,
    train_lm,
    vision_features,
)
from radinterp.demo_model.train_vision import (
    VISION_FILE,
    VisionTrainConfig,
    evaluate,
    load_probe,
    load_tower_weights,
    train_vision,
)
from radinterp.devices import resolve_device
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
    vision_data: Path | None = None, n_train: int = 6000, n_vision: int = 10000,
    n_val: int = 500, phantom_seed: int = 1, seed: int = 0, vision: VisionTrainConfig | None = None,
    lm: LMTrainConfig | None = None, model_cfg: DemoModelConfig | None = None, ship: bool = False,
    progress: bool = True, stop_after_vision: bool = False, align: AlignConfig | None = None,
    balanced: LMTrainConfig | None = None, balanced_steps: int = 1000,
    realign: AlignConfig | None = None, polish: LMTrainConfig | None = None, polish_steps: int = 1000,
    device: str = "cpu",
) -> Path:
    """Run (or resume) every stage; returns the folder of the trained weights.

    Stage 3 runs with ``balanced`` (default: :func:`default_balanced` for ``balanced_steps`` > 0,
    with an image-level ``realign`` of the projector first); an explicit ``balanced`` re-aligns
    only when ``realign`` is given too. Stage 4 runs with ``polish`` (default:
    :func:`default_polish` of stage 3 for ``polish_steps`` > 0); it needs stage 3.

    ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) is where the models train; the cached
    pixels, targets and features stay in CPU memory and move there a batch at a time."""
    dev = resolve_device(device)
    torch.manual_seed(seed)
    cfg = model_cfg or DemoModelConfig()
    vision = vision or VisionTrainConfig(seed=seed)
    lm = lm or LMTrainConfig(seed=seed)
    align = align or AlignConfig(seed=seed)
    if balanced is None and balanced_steps > 0:
        balanced = default_balanced(lm, balanced_steps)
        realign = realign or AlignConfig(steps=align.steps, batch_size=align.batch_size, lr=align.lr,
                                         seed=align.seed + 1, pool="image")
    if polish is None and polish_steps > 0 and balanced is not None:
        polish = default_polish(balanced, polish_steps)
    if polish is not None and balanced is None:
        raise ValueError("stage 4 continues stage 3: give balanced_steps > 0 (or balanced) too")
    out.mkdir(parents=True, exist_ok=True)
    saved_cfg = out / "cfg.json"
    if saved_cfg.exists() and DemoModelConfig.load(saved_cfg) != cfg:
        raise ValueError(f"{out} was trained with another model config ({saved_cfg}); use a new --out")
    cfg.save(saved_cfg)
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
    stage1: dict = {}

    def stage1_data() -> dict:  # pixels and targets of stage 1 (cached once, in memory)
        if not stage1:
            stage1.update(
                px_vis=cache_pixels(vis, icfg, progress), px_val=cache_pixels(val, icfg, progress),
                y_vis=planted_targets(vis, cfg.findings), y_val=planted_targets(val, cfg.findings),
                dense=None, known=None)
            if any(s.masks for s in vis):
                stage1["dense"], stage1["known"] = cache_patch_targets(
                    vis, cfg.findings, icfg, cfg.patch_size, progress)
        return stage1

    if (out / "vision" / VISION_FILE).exists():
        m1 = json.loads((out / "vision" / "metrics.json").read_text())
    else:
        d = stage1_data()
        m1 = train_vision(cfg, vision, d["px_vis"], d["y_vis"], d["px_val"], d["y_val"], out / "vision",
                          progress, patch_targets=d["dense"], patch_known=d["known"], device=dev)
    log.info("stage 1 done in %.0f s: val mean AUROC %.3f", time.time() - t0, m1["mean_auroc"])
    if stop_after_vision:
        return out / "vision"
    if not lm.train_tower:
        stage1.clear()

    t1 = time.time()
    model, tok = build_demo_model(cfg, seed=seed, lm_dtype=torch.bfloat16 if lm.bf16 else torch.float32)
    tower = model.model.vision_tower
    load_tower_weights(tower, out / "vision")
    model.to(dev)
    probe = load_probe(cfg, out / "vision").to(dev)
    pool = min(len(train), lm.steps * lm.batch_size)
    adapter = make_adapter(model, tok, cfg)
    encoded = encode_studies(adapter, train[:pool])
    px_train = cache_pixels(train[:pool], icfg, progress)
    fresh = not has_checkpoint(out / STAGE2_DIR / "ckpt")  # a resumed stage 2 has its projector
    # frozen-tower features: for the alignment, and as stage 2's input when the tower is frozen
    feats = vision_features(tower, px_train, progress=progress) if fresh or not lm.train_tower else None

    def align_stage(acfg: AlignConfig, f: torch.Tensor) -> dict:
        t = time.time()
        anchors, bg = anchor_embeddings(model.get_input_embeddings(), tok, cfg.findings)
        targets = alignment_targets(patch_probabilities(probe, f), anchors, bg, acfg.pool)
        m = align_projector(model.model.multi_modal_projector, f, targets, acfg, progress)
        log.info("projector aligned (%s-level targets) in %.0f s", acfg.pool, time.time() - t)
        return m

    m15 = align_stage(align, feats) if fresh else {}
    m_vision = m3 = None
    planted = planted_targets(train[:pool], cfg.findings)
    aux = None
    if lm.train_tower or (balanced and balanced.train_tower):
        d = stage1_data()
        aux = VisionAux(probe, d["px_vis"], d["y_vis"], vision, d["dense"], d["known"])

    def stage(tcfg: LMTrainConfig, folder: str, f: torch.Tensor | None) -> dict:
        if tcfg.train_tower:
            return train_lm(model, tok, cfg, tcfg, encoded, None, out / folder, progress,
                            pixels=px_train, aux=aux, planted=planted)
        return train_lm(model, tok, cfg, tcfg, encoded, f, out / folder, progress, planted=planted)

    m2 = stage(lm, STAGE2_DIR, feats)
    log.info("stage 2 done in %.0f s: final loss %.4f", time.time() - t1, m2["final_loss_20"])
    m3_align = {}
    if balanced is not None:
        t3 = time.time()
        if lm.train_tower:
            feats = None  # stage 2 trained the tower: earlier features are stale
        realigning = realign is not None and not has_checkpoint(out / STAGE3_DIR / "ckpt")
        if feats is None and (realigning or not balanced.train_tower):
            feats = vision_features(tower, px_train, progress=progress)  # the tower after stage 2
        if realigning:
            m3_align = align_stage(realign, feats)
        m3 = stage(balanced, STAGE3_DIR, feats)
        log.info("stage 3 done in %.0f s: final loss %.4f", time.time() - t3, m3["final_loss_20"])
    m4 = None
    if polish is not None:
        t4 = time.time()
        if balanced.train_tower:
            feats = None  # stage 3 trained the tower (stage 2's training was handled before stage 3)
        if feats is None and not polish.train_tower:
            feats = vision_features(tower, px_train, progress=progress)
        m4 = stage(polish, STAGE4_DIR, feats)
        log.info("stage 4 done in %.0f s: final loss %.4f", time.time() - t4, m4["final_loss_20"])
    if aux is not None:
        d = stage1_data()
        m_vision = evaluate(tower, probe, d["px_val"], d["y_val"], cfg.findings, vision.bf16)
        log.info("tower after stage 2%s%s: val mean AUROC %.3f", "+3" if balanced else "",
                 "+4" if polish else "",
                 m_vision["mean_auroc"])

    meta = {
        "seed": seed, "phantom_seed": phantom_seed, "n_train": len(train), "n_lm_pool": pool,
        "train_data": str(train_data), "val_data": str(val_data), "vision_data": str(vision_data),
        "vision_config": vision.to_dict(), "align_config": align.to_dict(),
        "align_final_mse": (sum(m15["losses"][-20:]) / len(m15["losses"][-20:])) if m15.get("losses") else None,
        "lm_config": lm.to_dict(), "stage1_val": m1, "stage2_final_loss": m2["final_loss_20"],
        "stage2_losses": m2["losses"], "stage2_vision_losses": m2["aux_losses"],
        "vision_val_final": m_vision,
        "balanced_config": balanced.to_dict() if balanced else None,
        "realign_config": realign.to_dict() if realign else None,
        "realign_final_mse": (sum(m3_align["losses"][-20:]) / len(m3_align["losses"][-20:]))
        if m3_align.get("losses") else None,
        "stage3_final_loss": m3["final_loss_20"] if m3 else None,
        "stage3_losses": m3["losses"] if m3 else None,
        "polish_config": polish.to_dict() if polish else None,
        "stage4_final_loss": m4["final_loss_20"] if m4 else None,
        "stage4_losses": m4["losses"] if m4 else None,
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


def default_balanced(lm: LMTrainConfig, steps: int) -> LMTrainConfig:
    """Stage 3 after ``lm``: half the peak learning rates, finding-balanced batches, finding
    sentences weighted 5x."""
    return LMTrainConfig(
        steps=steps, batch_size=lm.batch_size, lr_projector=lm.lr_projector / 2, lr_lora=lm.lr_lora / 2,
        warmup_steps=20, seed=lm.seed + 1, bf16=lm.bf16, ckpt_every=lm.ckpt_every,
        train_tower=lm.train_tower, lr_tower=lm.lr_tower / 2, aux_batch=lm.aux_batch,
        aux_weight=lm.aux_weight, positive_weight=5.0, balance=0.5)


def default_polish(balanced: LMTrainConfig, steps: int) -> LMTrainConfig:
    """Stage 4 after stage 3 (``balanced``): the same training, restarted learning-rate schedule,
    next seed (a new data order and new balanced draws)."""
    return replace(balanced, steps=steps, seed=balanced.seed + 1)


def main(
    out: Path = typer.Option(Path("runs/demo"), help="Run folder (checkpoints, phantoms, weights)."),
    train_data: Path = typer.Option(None, help="Phantom folder to train on (default: generate)."),
    val_data: Path = typer.Option(None, help="Phantom folder for validation (default: generate)."),
    vision_data: Path = typer.Option(None, help="Phantom folder with masks for stage 1 (default: generate)."),
    n_vision: int = typer.Option(10000, help="Stage-1 phantoms (with masks) to generate."),
    n_train: int = typer.Option(6000, help="Training phantoms to generate."),
    n_val: int = typer.Option(500, help="Validation phantoms to generate."),
    phantom_seed: int = typer.Option(1, help="Seed of the training phantoms (validation: +1)."),
    seed: int = typer.Option(0, help="Seed of initialisation and data order."),
    vision_epochs: int = typer.Option(8, help="Stage-1 epochs."),
    vision_lr: float = typer.Option(7e-4, help="Stage-1 peak learning rate."),
    image_size: int = typer.Option(224, help="Input side in pixels (image tokens: (size / patch)^2)."),
    patch_size: int = typer.Option(28, help="ViT patch side."),
    stop_after_vision: bool = typer.Option(False, help="Stop after stage 1."),
    lm_steps: int = typer.Option(1400, help="Stage-2 optimizer steps."),
    lm_batch_size: int = typer.Option(4, help="Stage-2 studies per step."),
    lr_lora: float = typer.Option(1e-3, help="Stage-2 peak learning rate of the LoRA factors."),
    positive_weight: float = typer.Option(3.0, help="Stage-2 loss weight of finding sentences."),
    lora_targets: str = typer.Option(",".join(DemoModelConfig().lora_targets),
                                     help="Comma-separated LM linear layers that get LoRA."),
    align_steps: int = typer.Option(400, help="Stage-1.5 projector alignment steps (0: skip)."),
    train_tower: bool = typer.Option(True, help="Keep training the vision tower in stage 2."),
    lr_tower: float = typer.Option(2e-4, help="Stage-2 peak learning rate of the tower."),
    aux_batch: int = typer.Option(64, help="Stage-1 images per stage-2 step for the tower's loss."),
    balanced_steps: int = typer.Option(1000, help="Stage-3 steps on finding-balanced batches (0: skip)."),
    polish_steps: int = typer.Option(
        1000, help="Stage-4 steps: stage 3 again with the learning rate restarted (0: skip)."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest on a shared CPU)."),
    device: str = typer.Option(
        "cpu", help="Where to train: cpu, cuda, cuda:1, auto (a GPU if any); data stay in CPU memory."),
    ship: bool = typer.Option(False, help="Copy the weights into radinterp/weights/demo."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train the demo model (both stages, resumable)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    run(out, train_data=train_data, val_data=val_data, vision_data=vision_data, n_train=n_train,
        n_vision=n_vision, n_val=n_val,
        phantom_seed=phantom_seed, seed=seed, vision=VisionTrainConfig(epochs=vision_epochs, lr=vision_lr, seed=seed),
        lm=LMTrainConfig(steps=lm_steps, batch_size=lm_batch_size, seed=seed, lr_lora=lr_lora,
                         positive_weight=positive_weight, train_tower=train_tower,
                         lr_tower=lr_tower, aux_batch=aux_batch), ship=ship,
        model_cfg=DemoModelConfig(image_size=image_size, patch_size=patch_size,
                                  lora_targets=tuple(t for t in lora_targets.split(",") if t)),
        align=AlignConfig(steps=align_steps, seed=seed),
        progress=progress, stop_after_vision=stop_after_vision, balanced_steps=balanced_steps,
        polish_steps=polish_steps, device=device)


if __name__ == "__main__":
    from radinterp.cli import run_standalone

    run_standalone(main)
