"""``radinterp method radiomics``: radiomic fingerprints (arXiv 2601.08604) on 2-D radiographs.

Steps: images + lung regions on the working grid -> pyradiomics features of the image, of its
oracle twin (phantoms) and of its learned persona (inpainter trained on the training split's
normal studies), each over 1x1 / 2x2 / 3x3 sub-patch grids of the lung region, extracted over
``workers`` processes and cached under ``OUT/features`` -> the ablation (persona x usage
predictor, with shuffled-label and random-feature baselines) -> the main variant (``persona``,
usage on) saved to ``OUT/model.safetensors`` with a map per test study in ``OUT/maps``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from eval.methods.base import METHODS, MethodContext, MethodOptions, ReferenceMethod
from eval.methods.io import load_safetensors, save_safetensors_atomic
from eval.methods.masks import finding_vocabulary, label_matrix
from eval.methods.radiomics.ablation import feature_matrix, persona_gain, run_ablation
from eval.methods.radiomics.features import ExtractSettings, feature_names, grid_cells
from eval.methods.radiomics.inpainter import InpainterConfig
from eval.methods.radiomics.maps import cell_index, contribution_map, named_features
from eval.methods.radiomics.parallel import extract_many
from eval.methods.radiomics.personas import (
    PERSONAS,
    StudyArrays,
    learned_personas,
    load_arrays,
    persona_agreement,
    region_agreement,
)
from eval.methods.radiomics.usage import UsageConfig, contributions, small_images

log = logging.getLogger(__name__)


@dataclass
class RadiomicsOptions(MethodOptions):
    """Options of the radiomic fingerprint (``--opt key=value``)."""

    size: int = 128
    """Working grid side: every image (any size, any bit depth) is resized to ``size x size``."""
    grids: tuple[int, ...] = (1, 2, 3)
    """Sub-patch grid sizes over the lung region's bounding box."""
    bin_width: float = 8.0
    """pyradiomics ``binWidth`` on the 0-255 scale."""
    min_cell_px: int = 4
    """Smallest cell side a grid may cut; finer grids are an error naming the fix."""
    region: str = "auto"
    """Lung region: auto (phantom render, else the study's lung mask, else an estimate),
    phantom, mask or estimate."""
    persona: str = "auto"
    """Persona of the saved model: oracle, learned, none, or auto (oracle where every study
    has a healthy twin, else learned)."""
    learned: bool = True
    """Also train the learned persona (diffusion inpainter) and put it in the ablation."""
    workers: int = 2
    """Processes extracting radiomic features."""
    min_positives: int = 5
    """A finding enters the vocabulary with at least this many positive training studies."""
    min_test_positives: int = 10
    """Fewer positive test studies than this: the finding's AUROC is flagged ``too_few``."""
    baselines: bool = True
    """Fit shuffled-label and random-feature baselines beside every variant."""
    map_side: int = 16
    """Side of the saved contribution maps."""
    inpaint_steps: int = 300
    """Training steps of the learned persona's inpainter (48 px tiny diffusion UNet)."""
    persona_detail: bool = True
    """Keep the image's detail finer than the inpainter's 48 px on the learned persona."""
    l1: float = 3e-4
    """L1 penalty on each study's summed feature usage (the usage predictor's sparsity)."""
    epochs: int = 30
    """Epochs of the fingerprint model (best validation epoch kept)."""

    def __post_init__(self) -> None:
        self.settings()  # validates grids, bin width, cell size
        self.inpainter()
        self.usage()
        if self.size < 32:
            raise ValueError(f"size {self.size} is too small; pass size=128 or more")
        if self.persona not in ("auto", *PERSONAS):
            raise ValueError(f"unknown persona {self.persona!r}; valid: auto, {', '.join(PERSONAS)}")
        if self.persona == "learned" and not self.learned:
            raise ValueError("persona=learned needs learned=true")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}; pass workers=2")
        if self.min_positives < 1 or self.map_side < 1:
            raise ValueError("min_positives and map_side must be >= 1")

    def settings(self) -> ExtractSettings:
        return ExtractSettings(tuple(int(g) for g in self.grids), self.bin_width, self.min_cell_px)

    def inpainter(self, seed: int = 0) -> InpainterConfig:
        return InpainterConfig(train_steps=self.inpaint_steps, seed=seed, keep_detail=self.persona_detail)

    def usage(self, seed: int = 0) -> UsageConfig:
        return UsageConfig(l1=self.l1, epochs=self.epochs, seed=seed)


def _cached(ctx: MethodContext, name: str, compute) -> np.ndarray:
    """Features block ``name`` from ``OUT/features`` (the run's cfg.json guards it), else
    computed and saved there atomically."""
    path = ctx.output.features_dir / f"radiomics-{name}.safetensors"
    if path.exists():
        return load_safetensors(path)[0]["x"].numpy()
    x = compute()
    save_safetensors_atomic(path, {"x": torch.from_numpy(np.ascontiguousarray(x))})
    return x


def _learned(ctx: MethodContext, arrays: StudyArrays, normal_train: np.ndarray,
             opts: RadiomicsOptions) -> tuple[np.ndarray, dict[str, torch.Tensor]]:
    """(learned personas (N, S, S) float32, inpainter state), cached under ``OUT/features``."""
    path = ctx.output.features_dir / "radiomics-personas.safetensors"
    if path.exists():
        t = load_safetensors(path)[0]
        return t.pop("personas").numpy().astype(np.float32), t
    learned, model = learned_personas(arrays, normal_train, opts.inpainter(ctx.seed), ctx.progress)
    state = {f"inpainter.{k}": v for k, v in model.state_dict().items()}
    learned = learned.round().clip(0, 255).astype(np.uint8)  # as an image file would hold it
    save_safetensors_atomic(path, {"personas": torch.from_numpy(learned), **state})
    return learned.astype(np.float32), state


def _check_grids(arrays: StudyArrays, settings: ExtractSettings) -> None:
    """Fail before the long extraction when some region cannot hold the grids."""
    for i, sid in enumerate(arrays.study_ids):
        for m in (arrays.regions[i], arrays.healthy_regions[i]):
            try:
                grid_cells(m, settings.grids, settings.min_cell_px)
            except ValueError as exc:
                raise type(exc)(f"study {sid!r}: {exc}") if not hasattr(exc, "fix") else \
                    type(exc)(f"study {sid!r}: {exc.what}", exc.fix) from None


@METHODS.register("radiomics")
class RadiomicsMethod(ReferenceMethod):
    """Radiomic fingerprints with healthy personas and a usage predictor."""

    name = "radiomics"
    Options = RadiomicsOptions

    def run(self, ctx: MethodContext) -> dict[str, Any]:
        opts: RadiomicsOptions = self.options  # type: ignore[assignment]
        settings = opts.settings()
        findings = ctx.findings(opts.min_positives)
        if not findings:
            raise ValueError(f"no finding has {opts.min_positives}+ positive training studies; "
                             "pass more studies or --opt min_positives=1")
        arrays = load_arrays(ctx.studies, opts.size, opts.region, ctx.progress)
        _check_grids(arrays, settings)
        rows = {p: arrays.rows(ctx.split.part(p)) for p in ("train", "val", "test")}
        y = label_matrix(ctx.studies, findings)  # (N, K) in arrays' order
        abnormal = label_matrix(ctx.studies, finding_vocabulary(ctx.studies)).any(1)  # (N,)
        n = len(ctx.studies)

        def extract(images, regions, desc):
            jobs = ((images[i].astype(np.float32), regions[i]) for i in range(n))
            return extract_many(jobs, settings, opts.workers, total=n, progress=ctx.progress, desc=desc)

        own = _cached(ctx, "image", lambda: extract(arrays.images, arrays.regions, "radiomics image"))
        personas: dict[str, np.ndarray | None] = {}
        if arrays.oracle is not None:
            personas["oracle"] = _cached(ctx, "oracle", lambda: extract(
                arrays.oracle, arrays.healthy_regions, "radiomics oracle twin"))
        extra: dict[str, Any] = {"regions": region_agreement(arrays)}
        inpainter_state: dict[str, torch.Tensor] = {}
        if opts.learned:
            normal_train = rows["train"][~abnormal[rows["train"]]]
            learned, inpainter_state = _learned(ctx, arrays, normal_train, opts)
            personas["learned"] = _cached(ctx, "learned", lambda: extract(
                learned, arrays.regions, "radiomics learned persona"))
            extra["learned_persona"] = {"normal_training_images": int(normal_train.size),
                                        **persona_agreement(arrays, learned, rows["test"],
                                                            abnormal[rows["test"]])}
        personas["none"] = None
        main = opts.persona if opts.persona != "auto" else (
            "oracle" if "oracle" in personas else "learned" if "learned" in personas else "none")
        if main not in personas:
            raise ValueError(f"persona {main!r} is unavailable here (no healthy twins on "
                             "non-phantom data); pass --opt persona=learned or none")
        usage_cfg = opts.usage(ctx.seed)
        imgs = small_images(arrays.images, usage_cfg.res)
        ablation, fits = run_ablation(own, personas, y, imgs, rows, findings, usage_cfg,
                                      opts.baselines)
        fit = fits[(main, True)]
        names = np.array(named_features(feature_names(settings), personas[main] is not None))
        kept = names[fit.standardiser.keep].tolist()
        self._save(ctx, fit, kept, findings, main, inpainter_state)
        self._maps(ctx, fit, feature_matrix(own, personas[main]), arrays, rows["test"], imgs,
                   kept, findings, settings, opts)
        pos_test = y[rows["test"]].sum(0)
        return {"findings": findings, "main_persona": main,
                "test_positives": {f: int(v) for f, v in zip(findings, pos_test, strict=True)},
                "too_few_positives": [f for f, v in zip(findings, pos_test, strict=True)
                                      if v < opts.min_test_positives],
                "ablation": ablation, "persona_gain": persona_gain(ablation, findings), **extra}

    @staticmethod
    def _save(ctx, fit, kept, findings, main, inpainter_state) -> None:
        state = {f"fingerprint.{k}": v for k, v in fit.model.state_dict().items()}
        std = fit.standardiser
        state.update({"standardiser.keep": torch.from_numpy(std.keep),
                      "standardiser.mean": torch.from_numpy(std.mean.astype(np.float32)),
                      "standardiser.std": torch.from_numpy(std.std.astype(np.float32)),
                      **inpainter_state})
        ctx.output.save_model(state, {"findings": findings, "persona": main, "features": kept})

    @staticmethod
    def _maps(ctx, fit, x, arrays, test_rows, imgs, kept, findings, settings, opts) -> None:
        cells_of = cell_index(kept, settings)
        xs = fit.standardiser(x[test_rows])
        contrib = contributions(fit.model, imgs[test_rows], xs)  # (N_test, K, F_kept)
        for j, r in enumerate(test_rows):
            sid = arrays.study_ids[r]
            if ctx.output.has_map(sid):
                continue
            m = contribution_map(contrib[j], cells_of, arrays.regions[r], settings, opts.map_side)
            u = fit.usage[j]
            ctx.output.save_map(sid, {"contribution": torch.from_numpy(m),
                                      "usage": torch.from_numpy(u.astype(np.float32))},
                                {"findings": findings,
                                 "fingerprint_size": int((u > opts.usage().threshold).sum())})
