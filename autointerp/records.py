"""Latent records: one streaming pass over an activation store through a saved SAE.

``build_records(store, sae)`` reads every study once (``Store.iter_studies``: each shard is
read once when it holds at most ``max_rows`` rows), encodes its rows with the SAE's JumpReLU
``encode`` and keeps, per latent, in bounded memory:

- firing counts by token kind (``TokenKind``) and the number of tokens seen: frequency and
  modality mix (image tokens vs text tokens; per study: image only, text only, both);
- a histogram of firing values over fixed log-spaced bins (plus under / over bins);
- the ``top_k`` studies by the latent's maximum activation (a per-batch ``topk`` merge over
  (latent, study) candidates, vectorised with torch);
- a uniform reservoir sample of ``reservoir`` activating studies (each (latent, study) pair gets
  a random key and the smallest keys are kept, the same ``topk`` merge), so that examples can
  be drawn across activation quantiles afterwards (``autointerp.sampling``);
- the per-study maximum activation of every latent, ``study_max`` (n_studies, d_sae) float16:
  2 * n_studies * d_sae bytes (64 MiB for 2,000 studies at d_sae 16,384), used for negatives.

Kept examples (``Example``: a study with the positions where the latent fires) hold at most
``max_positions`` positions each, so the whole record holds at most
``d_sae * (top_k + reservoir)`` examples of bounded size besides ``study_max``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from radinterp.config import BaseConfig
from radinterp.models.tokens import TokenKind
from radinterp.sae import SparseAutoencoder
from radinterp.store.reader import Store

log = logging.getLogger(__name__)

N_KINDS = len(TokenKind)
MODALITIES = ("image", "text", "both")


@dataclass
class Example:
    """One study as an example of one latent: where (and how strongly) the latent fires in it.

    A non-activating example (a negative) has ``activation == 0`` and no positions. Arrays all
    have shape (n,), one entry per firing position, strongest first."""

    study_id: str
    latent: int
    activation: float
    """The latent's maximum activation over the study's rows."""
    positions: np.ndarray  # (n,) int32: sequence positions where the latent fires
    values: np.ndarray  # (n,) float32: its activation there
    kinds: np.ndarray  # (n,) int8: TokenKind of each position
    token_ids: np.ndarray  # (n,) int32
    image_slot: np.ndarray  # (n,) int8: ImageSlot, -1 on text tokens
    patch_row: np.ndarray  # (n,) int16: -1 on text tokens
    patch_col: np.ndarray  # (n,) int16
    source: str = "top"
    """How it was drawn: ``top``, ``reservoir``, ``quantile``, ``random`` or ``hard`` (negatives)."""
    quantile: int | None = None
    """Activation-quantile bin it was drawn from (``sampling``), None otherwise."""

    @property
    def is_image(self) -> np.ndarray:
        return self.kinds == TokenKind.IMAGE  # (n,) bool

    @property
    def modality(self) -> str | None:
        """``image``, ``text`` or ``both``: which tokens it fires on (None for a negative)."""
        if not len(self.kinds):
            return None
        img = bool(self.is_image.any())
        txt = bool((~self.is_image).any())
        return "both" if img and txt else ("image" if img else "text")

    @classmethod
    def negative(cls, study_id: str, latent: int, source: str) -> Example:
        empty = {f: np.empty(0, dt) for f, dt in _ARRAYS.items()}
        return cls(study_id, latent, 0.0, **empty, source=source)


_ARRAYS = {"positions": np.int32, "values": np.float32, "kinds": np.int8, "token_ids": np.int32,
           "image_slot": np.int8, "patch_row": np.int16, "patch_col": np.int16}


@dataclass
class RecordsConfig(BaseConfig):
    """What the records pass keeps per latent."""

    site: str | None = None
    """Store site to read; default: the SAE's ``cfg.site``, else the store's only site."""
    top_k: int = 20
    """Studies kept per latent with the highest maximum activation."""
    reservoir: int = 40
    """Activating studies kept per latent as a uniform random sample (for quantile draws)."""
    max_positions: int = 256
    """Firing positions kept per example (the strongest)."""
    batch_rows: int = 2048
    """Rows encoded together (whole studies; one study bigger than this is encoded alone): the
    pass holds their codes, 4 * batch_rows * d_sae bytes (128 MiB at d_sae 16,384)."""
    hist_bins: int = 40
    """Log-spaced histogram bins between ``hist_min`` and ``hist_max`` (plus under / over)."""
    hist_min: float = 1e-3
    """Lower edge of the first histogram bin."""
    hist_max: float = 1e3
    """Upper edge of the last histogram bin."""
    seed: int = 0
    """Seed of the reservoir's random keys."""
    checkpoint_every: int = 4
    """Shards between checkpoints of the pass's state when ``build_records`` is given a
    ``checkpoint`` folder (each writes the state, about ``study_max`` in size)."""

    def __post_init__(self) -> None:
        for name in ("top_k", "reservoir", "max_positions", "batch_rows", "hist_bins",
                     "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}; pass a "
                                 "positive value")
        if not 0 < self.hist_min < self.hist_max:
            raise ValueError(f"need 0 < hist_min < hist_max, got {self.hist_min}, "
                             f"{self.hist_max}; pass e.g. hist_min=1e-3, hist_max=1e3")


@dataclass
class LatentRecords:
    """Everything one pass keeps; see the module docstring. Latents index the SAE's columns."""

    study_ids: list[str]
    """Studies in row order; ``study_max`` rows follow it."""
    n_tokens: int
    """Rows read."""
    tokens_by_kind: np.ndarray  # (N_KINDS,) int64
    fire_by_kind: np.ndarray  # (d_sae, N_KINDS) int64: firing tokens by TokenKind
    study_modality: np.ndarray  # (d_sae, 3) int64: studies firing on image only, text only, both
    hist_edges: np.ndarray  # (hist_bins + 1,) float64
    hist: np.ndarray  # (d_sae, hist_bins + 2) int64: [under, bins..., over]
    study_max: torch.Tensor  # (n_studies, d_sae) float16
    top: list[list[Example]]
    """Per latent, its top studies, strongest first."""
    reservoir: list[list[Example]]
    """Per latent, a uniform sample of its activating studies (no order)."""
    config: RecordsConfig = dataclasses.field(default_factory=RecordsConfig)

    @property
    def d_sae(self) -> int:
        return int(self.fire_by_kind.shape[0])

    @property
    def fire_count(self) -> np.ndarray:
        """(d_sae,) int64 firing tokens per latent."""
        return self.fire_by_kind.sum(1)

    def frequency(self, latent: int | None = None) -> np.ndarray | float:
        """Fraction of tokens the latent fires on (all latents when ``latent`` is None)."""
        freq = self.fire_count / max(self.n_tokens, 1)
        return freq if latent is None else float(freq[latent])

    def modality_mix(self, latent: int) -> dict[str, float]:
        """Image / text shares of the latent's firing tokens and its study counts by modality."""
        by_kind = self.fire_by_kind[latent]
        total = max(int(by_kind.sum()), 1)
        image = int(by_kind[TokenKind.IMAGE])
        studies = dict(zip((f"studies_{m}" for m in MODALITIES),
                           self.study_modality[latent].tolist(), strict=True))
        return {"image_tokens": image / total, "text_tokens": (total - image) / total, **studies}

    def modality(self, latent: int, *, pure: float = 0.9) -> str | None:
        """``image`` / ``text`` when at least ``pure`` of its firing tokens are of that
        modality, else ``both``; None for a latent that never fires."""
        if not self.fire_by_kind[latent].sum():
            return None
        return modality_class(self.modality_mix(latent)["image_tokens"], pure=pure)

    def activating_studies(self, latent: int) -> np.ndarray:
        """Indices (into ``study_ids``) of studies where the latent fires."""
        return torch.nonzero(self.study_max[:, latent] > 0).flatten().numpy()


def modality_class(image_share: float, *, pure: float = 0.9) -> str:
    """``image`` / ``text`` when at least ``pure`` of a latent's firing tokens are of that
    modality (``image_share``: its image-token share, ``modality_mix``), else ``both``."""
    return "image" if image_share >= pure else ("text" if image_share <= 1 - pure else "both")


def build_records(
    store: Store, sae: SparseAutoencoder, cfg: RecordsConfig | None = None, *,
    max_rows: int | None = None, progress: bool = False, checkpoint: str | Path | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> LatentRecords:
    """One streaming pass over ``store`` through ``sae``; see the module docstring.
    ``max_rows`` is passed to ``Store.iter_studies`` (rows per read); ``progress`` shows a
    progress bar over shards.

    ``checkpoint``: a folder where the pass's state is saved every ``cfg.checkpoint_every``
    shards and at the end (``autointerp.checkpoint``); a pass finding a checkpoint of the same
    SAE, store and config there resumes after its last whole shard, and ends with the same
    records as a pass that was never interrupted (batches are cut at the checkpoints either
    way). ``on_checkpoint(shards_done)`` is called after each save."""
    from tqdm.auto import tqdm

    from autointerp.accumulate import Accumulator
    from autointerp.checkpoint import load_state, pass_key, save_state

    cfg = cfg or RecordsConfig()
    site = _site_of(store, sae, cfg)
    if store.d_model != sae.d_in:
        raise ValueError(f"the SAE reads d_in={sae.d_in} but store {store.root} has "
                         f"d_model={store.d_model}; pass the SAE trained on this store's site")
    acc = Accumulator(cfg, sae.d_sae, n_studies=len(store.studies()))
    shard_of = {sid: span.shard for sid, span in store.study_index().items() if span is not None}
    key = pass_key(store, sae, site, cfg) if checkpoint is not None else None
    done = load_state(checkpoint, acc, key) if checkpoint is not None else 0
    n_shards = len(store.shards)

    def save(shards_done: int) -> None:
        if checkpoint is not None:
            save_state(checkpoint, acc, shards_done, key)
            if on_checkpoint is not None:
                on_checkpoint(shards_done)

    pending: list[tuple[str, dict[str, np.ndarray], torch.Tensor]] = []
    rows, last = 0, done
    todo = None if not done else [s for s, i in shard_of.items() if i >= done]
    bar = tqdm(desc="records", unit="shard", total=n_shards, initial=done,
               disable=not progress)
    with torch.no_grad(), bar:
        studies = [] if todo == [] else store.iter_studies(site, todo, max_rows=max_rows)
        for sid, meta, acts in studies:
            shard = shard_of[sid]
            bar.update(shard - bar.n)
            if checkpoint is not None and shard - last >= cfg.checkpoint_every:
                if pending:
                    acc.add(pending, sae)
                    pending, rows = [], 0
                save(shard)
                last = shard
            if pending and rows + acts.shape[0] > cfg.batch_rows:
                acc.add(pending, sae)
                pending, rows = [], 0
            pending.append((sid, meta, acts))
            rows += acts.shape[0]
        if pending:
            acc.add(pending, sae)
        bar.update(n_shards - bar.n)
    if done < n_shards:
        save(n_shards)
    records = acc.finish()
    log.info("latent records: %d studies, %d tokens, %d of %d latents fire",
             len(records.study_ids), records.n_tokens, int((records.fire_count > 0).sum()),
             records.d_sae)
    return records


def _site_of(store: Store, sae: SparseAutoencoder, cfg: RecordsConfig) -> str:
    if cfg.site is not None:
        return cfg.site
    if sae.cfg.site is not None and sae.cfg.site in store.sites:
        return sae.cfg.site
    if len(store.sites) == 1:
        return store.sites[0]
    raise ValueError(f"store {store.root} holds sites {store.sites} and the SAE names none of "
                     "them; pass RecordsConfig(site=...)")


__all__ = ["MODALITIES", "Example", "LatentRecords", "RecordsConfig", "build_records", "modality_class"]
