"""What the HTML report shows of each explained latent, written once during the pipeline.

``write_examples`` draws each latent's sample (``sample_latent``, the same draw the explainers
and scorers saw), keeps its ``n_examples`` strongest activating examples of the explanation
and test sets together, and writes one JSON line per latent to ``OUT/examples.jsonl``:

- ``hist``: the records' activation histogram (``edges`` (bins + 1,), ``counts`` (bins + 2,):
  under, bins, over) and the latent's ``frequency``;
- ``examples``: study, split (``explain`` / ``test``), source, activation, modality, the image
  slot it fires on most with its heatmap PNG over the radiograph (``OUT/heatmaps/
  latent_<i>_<k>.png``, ``radinterp.overlay.write_overlay`` as in
  ``autointerp.context.write_example_heatmap``, on the radiograph shrunk to ``max_side``, one
  colour scale per latent) and region phrase, the report sentences with its activating tokens
  marked and their values (``example_sentences``), and the study's positive labels.

So the HTML (``autointerp.report.html``) is rebuilt from the output folder alone, without the
store. The records are already in memory: nothing here reads the store's activations.

Text marking re-tokenises a study with the capture's own model adapter (``store_adapter``:
the model named in the store manifest, loaded on the CPU for its tokenizer, a few seconds for
``tiny`` / ``demo``, a full model load for MAIRA-2: pass ``adapter`` from Python to reuse one).
When the model cannot be loaded (a store written without one), examples keep their heatmaps
and labels, and ``text_error`` says why their sentences are missing. Heatmaps need only the
patch grid (``image_size`` / ``patch_size`` recorded in the manifest). Rows are appended and
flushed one per latent; a rerun skips latents already written.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autointerp.context import (
    encode_study,
    example_sentences,
    patch_heat,
    region_phrase,
    slot_image,
    study_labels,
)
from autointerp.records import Example, LatentRecords
from autointerp.sampling import SampleConfig, sample_latent
from radinterp.config import BaseConfig
from radinterp.data.study import Study
from radinterp.labels import positive_labels
from radinterp.models.image import load_image
from radinterp.models.tokens import ImageSlot, TokenKind
from radinterp.overlay import write_overlay

log = logging.getLogger(__name__)

EXAMPLES = "examples.jsonl"
HEATMAPS = "heatmaps"


@dataclass
class ExamplesConfig(BaseConfig):
    """What the report keeps per latent."""

    n_examples: int = 8
    """Activating examples per latent, strongest first (explanation and test sets together)."""
    cmap: str = "inferno"
    """Colour map of the heatmaps (``radinterp.overlay.colormap``)."""
    alpha: float = 0.6
    """Heatmap opacity at the latent's strongest shown activation."""
    max_side: int = 512
    """Longest side of a heatmap PNG in pixels (the radiograph is shrunk to it, never grown)."""

    def __post_init__(self) -> None:
        if self.n_examples < 1:
            raise ValueError(f"n_examples must be >= 1, got {self.n_examples}; pass e.g. 8")
        if self.max_side < 16:
            raise ValueError(f"max_side must be >= 16, got {self.max_side}; pass e.g. 512")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}; pass e.g. 0.6")


@dataclass
class PatchGrid:
    """The capture's patch grid without its model: what ``write_example_heatmap`` needs."""

    image_size: int
    """Side of the square crop fed to the vision tower."""
    patch_size: int
    """Vision-tower patch side in crop pixels."""

    @property
    def n_patches_side(self) -> int:
        return self.image_size // self.patch_size

    def patch_geometry(self, image):
        from radinterp.models.geometry import PatchGeometry

        return PatchGeometry.of(image, self.image_size, self.patch_size)


def store_grid(store) -> PatchGrid | None:
    """The store's patch grid from its manifest (None when the capture recorded none)."""
    desc = (store.manifest.get("config") or {}).get("adapter") or {}
    if not desc.get("image_size") or not desc.get("patch_size"):
        return None
    return PatchGrid(int(desc["image_size"]), int(desc["patch_size"]))


def store_adapter(store):
    """The capture's model adapter, loaded on the CPU (for its tokenizer); raises ``ValueError``
    or ``OSError`` when the manifest's model cannot be loaded."""
    import dataclasses

    import torch

    from radinterp.capture.config import CaptureConfig
    from radinterp.capture.runner import load_capture_adapter

    conf = dict(store.manifest.get("config") or {})
    conf.setdefault("model", store.manifest.get("model"))
    names = {f.name for f in dataclasses.fields(CaptureConfig)}
    cfg = CaptureConfig.from_dict({k: v for k, v in conf.items() if k in names}
                                  | {"data": conf.get("data") or ".", "out": str(store.root)})
    return load_capture_adapter(cfg, torch.device("cpu"))


def _slot(ex: Example) -> int | None:
    """The image slot where ``ex`` fires most strongly (None: no image token)."""
    img = ex.kinds == TokenKind.IMAGE
    if not img.any():
        return None
    return int(ex.image_slot[img][int(np.argmax(ex.values[img]))])


class _Texts:
    """Marked sentences per example, the adapter loaded on first need and each study encoded
    once."""

    def __init__(self, store, adapter, with_report: bool) -> None:
        self.store, self.adapter, self.with_report = store, adapter, with_report
        self.error: str | None = None
        self.encoded: dict[str, Any] = {}

    def sentences(self, ex: Example, study: Study) -> tuple[list[dict] | None, str | None]:
        if (ex.kinds == TokenKind.IMAGE).all():
            return [], None
        if self.adapter is None and self.error is None:
            try:
                self.adapter = store_adapter(self.store)
            except (ValueError, OSError, KeyError) as err:
                self.error = (f"report text not marked: the capture's model could not be loaded "
                              f"({err}); pass adapter= to write_examples")
                log.warning("%s", self.error)
        if self.adapter is None:
            return None, self.error
        if study.study_id not in self.encoded:
            self.encoded[study.study_id] = encode_study(self.adapter, study,
                                                        with_report=self.with_report)
        try:
            sents = example_sentences(ex, self.encoded[study.study_id])
        except ValueError as err:  # generated tokens, or a study changed since the capture
            return None, str(err)
        return [{"text": s.text, "marked": s.marked, "tokens": s.tokens,
                 "values": [float(v) for v in s.values]} for s in sents], None


def _heatmap(out: Path, rel: str, ex: Example, study: Study, grid, vmax: float,
             cfg: ExamplesConfig) -> tuple[str | None, str | None, str | None]:
    """(png path relative to ``out``, slot name, region phrase) of ``ex``'s strongest image,
    drawn on the radiograph shrunk to ``cfg.max_side`` (the crop scales with it)."""
    slot = _slot(ex)
    if slot is None or grid is None:
        return None, None, None
    slot = ImageSlot(slot)
    heat = patch_heat(ex, grid.n_patches_side, slot)  # (n_side, n_side)
    try:
        image = load_image(slot_image(study, slot))
    except ValueError as err:  # the study lacks that image
        log.warning("no heatmap for latent %d on %s: %s", ex.latent, study.study_id, err)
        return None, slot.name.lower(), region_phrase(heat)
    if max(image.size) > cfg.max_side:
        image = image.copy()
        image.thumbnail((cfg.max_side, cfg.max_side))
    write_overlay(out / rel, image, heat, grid.patch_geometry(image), cmap=cfg.cmap,
                  alpha=cfg.alpha, vmin=0.0, vmax=vmax)
    return rel, slot.name.lower(), region_phrase(heat)


def latent_examples(records: LatentRecords, latent: int, sample_cfg: SampleConfig,
                    n: int) -> list[tuple[str, Example]]:
    """(split, example) of ``latent``'s ``n`` strongest activating drawn examples."""
    sample = sample_latent(records, latent, sample_cfg)
    drawn = [("explain", e) for e in sample.explain] + [("test", e) for e in sample.test]
    drawn = [(s, e) for s, e in drawn if e.activation > 0]
    return sorted(drawn, key=lambda se: -se[1].activation)[:n]


def write_examples(
    out: str | Path, records: LatentRecords, latents: list[int], studies: list[Study],
    sample_cfg: SampleConfig, *, store, adapter=None, cfg: ExamplesConfig | None = None,
    progress: bool = False,
) -> Path:
    """Write ``OUT/examples.jsonl`` and the heatmap PNGs (see the module docstring)."""
    from tqdm.auto import tqdm

    from autointerp.pipeline import _default, read_jsonl_rows

    cfg = cfg or ExamplesConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / EXAMPLES
    done = {r["latent"] for r in read_jsonl_rows(path)}
    by_id = {s.study_id: s for s in studies}
    grid = adapter if adapter is not None else store_grid(store)
    with_report = bool((store.manifest.get("config") or {}).get("with_report", True))
    texts = _Texts(store, adapter, with_report)
    with open(path, "a") as fh:
        for f in tqdm(latents, desc="report examples", unit="latent", disable=not progress):
            if f in done:
                continue
            shown = latent_examples(records, f, sample_cfg, cfg.n_examples)
            vmax = max((float(e.values[e.kinds == TokenKind.IMAGE].max(initial=0.0))
                        for _, e in shown), default=0.0) or 1.0  # one colour scale per latent
            rows = []
            for k, (split, ex) in enumerate(shown):
                study = by_id[ex.study_id]
                png, slot, region = _heatmap(out, f"{HEATMAPS}/latent_{f}_{k}.png", ex, study,
                                             grid, vmax, cfg)
                sents, err = texts.sentences(ex, study)
                rows.append({
                    "study_id": ex.study_id, "split": split, "source": ex.source,
                    "quantile": ex.quantile, "activation": ex.activation,
                    "modality": ex.modality, "heatmap": png, "slot": slot, "region": region,
                    "sentences": sents, "text_error": err,
                    "labels": positive_labels(study_labels(study))})
            fh.write(json.dumps({
                "latent": f, "frequency": records.frequency(f),
                "hist": {"edges": records.hist_edges, "counts": records.hist[f]},
                "examples": rows}, default=_default) + "\n")
            fh.flush()
    return path


__all__ = ["EXAMPLES", "HEATMAPS", "ExamplesConfig", "PatchGrid", "latent_examples",
           "store_adapter", "store_grid", "write_examples"]
