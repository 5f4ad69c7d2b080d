"""Assemble shippable weights from a (possibly still running) training run folder.

    python -m radinterp.demo_model.export --run runs/demo --out runs/demo/weights_step300

Takes stage 1's tower (``RUN/vision/vision.safetensors``) and the latest language-model
checkpoint: stage 4's (``RUN/lm4/ckpt``) once it has one, else stage 3's (``RUN/lm3/ckpt``),
else stage 2's (``RUN/lm/ckpt``), so a run cut short still yields a loadable model.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import typer
from safetensors.torch import load_file

from radinterp.demo_model.build import build_demo_model, save_demo_weights
from radinterp.demo_model.ckpt import STATE_FILE
from radinterp.demo_model.config import DemoModelConfig
from radinterp.demo_model.train_lm import latest_lm_checkpoint
from radinterp.demo_model.train_vision import load_tower_weights, strip_prefix

log = logging.getLogger(__name__)


def export(run_dir: Path, out_dir: Path, cfg: DemoModelConfig | None = None) -> Path:
    """Weights of ``run_dir`` at its latest language-model checkpoint (config: the run's ``cfg.json``)."""
    if cfg is None:
        saved = run_dir / "cfg.json"
        cfg = DemoModelConfig.load(saved) if saved.exists() else DemoModelConfig()
    latest = latest_lm_checkpoint(run_dir)
    if latest is None:
        raise FileNotFoundError(f"{run_dir} has no language-model checkpoint yet; wait for stage 2's first")
    stage, ckpt = latest
    model, _ = build_demo_model(cfg)
    load_tower_weights(model.model.vision_tower, run_dir / "vision")
    params = load_file(str(ckpt / "params.safetensors"))
    # a stage 2 that trained the tower checkpoints it (and the stage-1 probe, not shipped)
    tower = strip_prefix(params, "tower.")
    if tower:
        model.model.vision_tower.load_state_dict(tower)
    params = {k: v for k, v in params.items() if not k.startswith(("tower.", "probe."))}
    missing, unexpected = model.load_state_dict(params, strict=False)
    if unexpected:
        raise ValueError(f"checkpoint keys not in the model: {unexpected[:3]}; pass the run's config")
    state = json.loads((ckpt / STATE_FILE).read_text())
    meta = {"run_dir": str(run_dir), "stage": stage, "step": state["step"],
            "loss_last20": sum(state["losses"][-20:]) / max(1, len(state["losses"][-20:]))}
    vis_metrics = run_dir / "vision" / "metrics.json"
    if vis_metrics.exists():
        meta["stage1_val"] = json.loads(vis_metrics.read_text())
    save_demo_weights(model, cfg, out_dir, meta)
    return out_dir


def main(
    run: Path = typer.Option(..., help="Training run folder."),
    out: Path = typer.Option(..., help="Where to write model.safetensors + cfg.json."),
) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    export(run, out)


if __name__ == "__main__":
    from radinterp.cli import run_standalone

    run_standalone(main)
