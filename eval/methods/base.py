"""The reference methods' frame: registry, run config, run context and :func:`run_method`.

A method is a :class:`ReferenceMethod` subclass registered in :data:`METHODS` with a typed
``Options`` dataclass; ``run(ctx)`` fits it on ``ctx.split.train`` (thresholds on
``ctx.split.val``), writes ``ctx.output.save_model`` and per test study
``ctx.output.save_map``, and returns its metrics. The frame does everything around it::

    cfg = MethodRunConfig(method="insight", data="data/phantoms", out="runs/insight")
    metrics = run_method(cfg)          # -> dict, also OUT/metrics.json

Method modules register themselves on import; :func:`load_methods` imports those in
:data:`METHOD_MODULES` that exist, so adding a method is one module plus one name there.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import time
import types
import typing
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np

from eval.methods.io import MethodOutput
from eval.methods.masks import PatchMasks, finding_vocabulary, label_matrix, load_patch_masks
from eval.methods.patch_features import PatchFeatures, default_site, extract_patch_features
from eval.methods.splits import Split, check_fractions, make_split
from radinterp.config import BaseConfig
from radinterp.data.study import Study
from radinterp.models.sites import parse_site
from radinterp.registry import Registry

log = logging.getLogger(__name__)

METHODS: Registry[type[ReferenceMethod]] = Registry("reference method")
METHOD_MODULES = ("eval.methods.csr", "eval.methods.insight", "eval.methods.radiomics")
"""Modules that register a method when imported (a missing one is skipped)."""


def load_methods() -> Registry[type[ReferenceMethod]]:
    """:data:`METHODS` with every method module that exists imported."""
    for mod in METHOD_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name != mod:  # a real missing dependency, not an unbuilt method
                raise
    return METHODS


@dataclass
class MethodOptions(BaseConfig):
    """Base of every method's options (``--opt key=value`` on the command line)."""


@dataclass
class MethodRunConfig(BaseConfig):
    """One run of a reference method (saved as ``OUT/cfg.json``)."""

    method: str
    """Registered method name (``radinterp method --help`` lists them)."""
    data: str
    """Studies: a phantom folder, an image folder with metadata.jsonl, or a MIMIC-style .jsonl."""
    out: str
    """Output folder (model.safetensors, cfg.json, metrics.json, maps/)."""
    model: str = "demo"
    """Model whose patch features csr / insight read: adapter name, Hub id or folder."""
    model_options: dict[str, Any] = field(default_factory=dict)
    """Keyword options of the adapter's ``load`` (e.g. ``{"image_size": 112}`` for ``tiny``)."""
    site: str | None = None
    """Canonical site of the patch features; None: the model's last vision block."""
    seed: int = 0
    """Seed of the split and of every random initialisation."""
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)
    """Train / validation / test fractions of the studies (by hashed study id)."""
    max_studies: int | None = None
    """Use only the first N studies of the data (None: all)."""
    batch_size: int = 16
    """Studies per forward when extracting patch features."""
    device: str = "cpu"
    """Torch device of the model and of training."""
    progress: bool = True
    """Show progress bars."""
    options: dict[str, Any] = field(default_factory=dict)
    """The method's own options (its ``Options`` fields), as values or ``key=value`` strings."""

    def __post_init__(self) -> None:
        if not self.method:
            raise ValueError("method is empty; pass a method name (e.g. insight)")
        self.split = check_fractions(self.split)
        if self.site is not None:
            parse_site(self.site)  # raises with the accepted forms
        if self.max_studies is not None and self.max_studies < 3:
            raise ValueError(f"max_studies {self.max_studies} leaves too few studies for "
                             "train / val / test; pass at least 3 or drop --max-studies")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}; pass e.g. 16")


def parse_options(cls: type[MethodOptions], raw: dict[str, Any]) -> MethodOptions:
    """``cls`` from ``raw`` (values, or strings from ``--opt key=value`` converted by the
    field's type); unknown keys raise listing the valid ones."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    bad = sorted(set(raw) - set(names))
    if bad:
        raise ValueError(f"{cls.__name__} has no option(s) {bad}; valid options: "
                         f"{', '.join(names) or '(none)'}")
    return cls(**{k: _coerce(k, v, hints[k]) for k, v in raw.items()})


def _coerce(name: str, value: Any, hint: Any) -> Any:
    if not isinstance(value, str):
        return value
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)  # X | None, not tuple[int, ...]
    kinds = [t for t in typing.get_args(hint) if t is not type(None)] if union else [hint]
    if value.lower() in ("none", "null") and type(None) in typing.get_args(hint):
        return None
    base = typing.get_origin(kinds[0]) or kinds[0]
    try:
        if base is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if base in (int, float):
            return base(value)
        if base in (tuple, list):
            inner = (typing.get_args(kinds[0]) or (str,))[0]
            return base(inner(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"option {name}={value!r} is not a {getattr(base, '__name__', base)}; "
                         f"pass {name}=<{getattr(base, '__name__', base)}>") from None
    return value


class MethodContext:
    """What a method reads: the studies, their split, labels, masks and patch features."""

    def __init__(self, cfg: MethodRunConfig, studies: list[Study], output: MethodOutput,
                 adapter: Any = None) -> None:
        self.cfg = cfg
        self.studies = studies
        self.output = output
        self._adapter = adapter
        self.split: Split = make_split([s.study_id for s in studies], cfg.split, cfg.seed)
        self.by_id = {s.study_id: s for s in studies}

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def progress(self) -> bool:
        return self.cfg.progress

    @cached_property
    def adapter(self) -> Any:
        """The model (loaded on first use: radiomics never needs it)."""
        if self._adapter is None:
            from radinterp.models import load_adapter

            opts = dict(self.cfg.model_options)
            if self.cfg.device != "cpu":
                opts.setdefault("device", self.cfg.device)
            self._adapter = load_adapter(self.cfg.model, **opts)
        return self._adapter

    @cached_property
    def site(self) -> str:
        """The resolved feature site (the model's last vision block by default)."""
        return self.cfg.site or default_site(self.adapter)

    @cached_property
    def features(self) -> PatchFeatures:
        """Patch features of every study (extracted once, cached under OUT/features)."""
        return extract_patch_features(self.adapter, self.studies, self.site,
                                      self.output.features_dir, batch_size=self.cfg.batch_size,
                                      progress=self.progress)

    def studies_of(self, part: str) -> list[Study]:
        """Studies of split ``part`` (train, val, test), in split order."""
        return [self.by_id[s] for s in self.split.part(part)]

    def findings(self, min_positives: int = 1) -> list[str]:
        """Findings with at least ``min_positives`` positive studies in the train split."""
        return finding_vocabulary(self.studies_of("train"), min_positives)

    def labels(self, study_ids: list[str], findings: list[str]) -> np.ndarray:
        """(K, F) bool labels of ``study_ids``."""
        return label_matrix([self.by_id[s] for s in study_ids], findings)

    def patch_masks(self, study_ids: list[str], findings: list[str],
                    positives: np.ndarray | None = None) -> PatchMasks:
        """Ground-truth patch masks on the model's grid (see :func:`load_patch_masks`)."""
        return load_patch_masks([self.by_id[s] for s in study_ids], findings,
                                self.adapter.patch_geometry, positives)


class ReferenceMethod(ABC):
    """A reference interpretability method: fit on train, maps and metrics on test."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    """The method's typed options."""

    def __init__(self, options: MethodOptions) -> None:
        self.options = options

    @abstractmethod
    def run(self, ctx: MethodContext) -> dict[str, Any]:
        """Fit, write model + maps through ``ctx.output``, and return the metrics."""


def run_method(cfg: MethodRunConfig, *, adapter: Any = None, overwrite: bool = False) -> dict[str, Any]:
    """Run ``cfg.method`` on ``cfg.data`` into ``cfg.out``; a finished run returns its metrics."""
    from radinterp.data.sources import open_studies

    method_cls = load_methods().get(cfg.method)
    options = parse_options(method_cls.Options, cfg.options)
    resolved = {**cfg.to_dict(), "options": options.to_dict()}
    output = MethodOutput(cfg.out)
    if output.prepare(resolved, overwrite=overwrite):
        log.info("%s already holds this run; nothing to do", cfg.out)
        return output.load_metrics()
    t0 = time.perf_counter()
    studies = list(open_studies(cfg.data))[: cfg.max_studies]
    ctx = MethodContext(cfg, studies, output, adapter)
    metrics = method_cls(options).run(ctx)
    metrics = {"method": cfg.method, "data": cfg.data, "n_studies": len(studies),
               "split_sizes": ctx.split.sizes(), "seconds": round(time.perf_counter() - t0, 1),
               **({"site": ctx.site, "model": cfg.model} if "features" in ctx.__dict__ else {}),
               **metrics}
    output.save_metrics(metrics)
    return metrics


__all__ = ["METHODS", "METHOD_MODULES", "MethodContext", "MethodOptions", "MethodRunConfig",
           "ReferenceMethod", "load_methods", "parse_options", "run_method"]
